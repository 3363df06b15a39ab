package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seedmq/mq"
)

// Delivery is one message handed to the dispatcher.
type Delivery struct {
	// Msg is passed to the handler.
	Msg *mq.Message
	// Lane orders deliveries: those with the same non-empty Lane run one
	// at a time, in the order they were submitted. Empty means unordered.
	Lane string
	// Settler records the outcome with the broker (see Settler). A
	// driver's own delivery type, holding this Delivery, is usually the
	// Settler itself, which costs no allocation per message; SettleFunc
	// makes one of a func.
	Settler Settler
	// Begin, if set, is called with the delivery by the worker right
	// before each handler run. An error skips the run: Settle gets that
	// error instead of the handler's. Drivers use it to refuse a delivery
	// that became stale while it waited (its Kafka partition was revoked,
	// say) and to record that its handler started. One Begin func can
	// serve many deliveries, telling them apart by Ref.
	Begin func(del *Delivery) error
	// Ref is the driver's own reference to the delivery (a Kafka offset,
	// say), for its Begin. The dispatcher does not use it.
	Ref int64
}

// Settler records a delivery's outcome with the broker. Settle is called
// after each handler run with the handler's result (nil = ack), or once
// with ErrNotHandled when shutdown releases the delivery. Returning retry
// true makes the dispatcher run the handler again after delay, with
// Msg.Attempt increased, keeping the delivery's place in its lane; no
// worker is held during the delay, so other lanes go on. ctx is not
// canceled by shutdown; the driver bounds its own calls.
type Settler interface {
	Settle(ctx context.Context, err error) (delay time.Duration, retry bool)
}

// SettleFunc is a func used as a Settler.
type SettleFunc func(ctx context.Context, err error) (delay time.Duration, retry bool)

// Settle calls f.
func (f SettleFunc) Settle(ctx context.Context, err error) (time.Duration, bool) {
	return f(ctx, err)
}

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	// Concurrency is the number of workers, the most handlers running at
	// once for deliveries given to Submit (1 to MaxConcurrency; values
	// outside are raised or lowered to that range). Run's callers
	// bring their own goroutines; the driver limits how many.
	Concurrency int
	// MaxPending bounds deliveries submitted but not yet settled, running
	// ones included. Submit blocks while it is reached. Default:
	// Concurrency; at most MaxPendingLimit.
	MaxPending int
	// Logger receives panics and settle failures. Default slog.Default().
	Logger *slog.Logger
}

// MaxPendingLimit is the largest DispatcherConfig.MaxPending a Dispatcher
// uses; a larger value is lowered to it.
const MaxPendingLimit = 16 * MaxConcurrency

// Dispatcher runs a subscription's handler: it enforces the concurrency
// limit, keeps deliveries of one ordering lane in submission order,
// recovers panics, retries in place when Settle asks, and drains on
// shutdown. A driver feeds it deliveries and settles the results with its
// broker: with Submit, which hands each to a worker goroutine, or with
// Run, which handles one in the calling goroutine. Create it with
// NewDispatcher.
type Dispatcher struct {
	h      mq.Handler
	log    *slog.Logger
	hctx   context.Context    // handlers' context
	cancel context.CancelFunc // cancels hctx
	sctx   context.Context    // settle context: never canceled by shutdown

	slots   chan struct{}  // one token per pending delivery
	ready   chan *Delivery // closed with idle: nothing is sent after
	closing chan struct{}  // closed when Shutdown begins
	closed  atomic.Bool    // set when closing is closed
	idle    chan struct{}  // closed when closing and nothing is pending

	mu       sync.Mutex
	lanes    map[string][]*Delivery    // queued successors per busy lane
	waiting  map[*Delivery]*time.Timer // waiting to be retried in place
	pending  int
	inFlight atomic.Int32 // handlers running now
	stopping bool
	started  bool // the workers are running
	workers  sync.WaitGroup
	nworkers int
}

// NewDispatcher starts a dispatcher whose handlers run with contexts derived from
// ctx. Cancel ctx, or call Shutdown, to stop it; Shutdown must be called
// in every case to wait for the workers.
func NewDispatcher(ctx context.Context, h mq.Handler, cfg DispatcherConfig) *Dispatcher {
	// Bounded here too, whatever the driver derived them from, so that no
	// option can size a channel out of range.
	cfg.Concurrency = min(max(cfg.Concurrency, 1), MaxConcurrency)
	cfg.MaxPending = min(max(cfg.MaxPending, cfg.Concurrency), MaxPendingLimit)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hctx, cancel := context.WithCancel(ctx)
	d := &Dispatcher{
		h:        h,
		log:      cfg.Logger,
		hctx:     hctx,
		cancel:   cancel,
		sctx:     context.WithoutCancel(ctx),
		slots:    make(chan struct{}, cfg.MaxPending),
		ready:    make(chan *Delivery, cfg.MaxPending),
		closing:  make(chan struct{}),
		idle:     make(chan struct{}),
		lanes:    map[string][]*Delivery{},
		waiting:  map[*Delivery]*time.Timer{},
		nworkers: cfg.Concurrency,
	}
	return d
}

// startWorkers starts the workers unless they are running; it is called
// with d.mu held, before the first delivery goes to the ready queue. A
// dispatcher used with Run alone never starts them.
func (d *Dispatcher) startWorkers() {
	if d.started {
		return
	}
	d.started = true
	d.workers.Add(d.nworkers)
	for range d.nworkers {
		go d.work()
	}
}

// Submit queues del for a worker, blocking while MaxPending deliveries are
// pending. It returns ctx's error if ctx ends first, and mq.ErrClosed once
// Shutdown has begun; in both cases del was not taken and the caller still
// owns it.
func (d *Dispatcher) Submit(ctx context.Context, del *Delivery) error {
	if err := d.admit(ctx); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if del.Lane != "" {
		if q, busy := d.lanes[del.Lane]; busy {
			d.lanes[del.Lane] = append(q, del)
			return nil
		}
		d.lanes[del.Lane] = nil
	}
	d.startWorkers()
	d.ready <- del // never blocks: ready holds at most MaxPending
	return nil
}

// Run handles del in the calling goroutine, as a worker would, and
// returns once it is settled. It spares the hand-off to a worker, for a
// driver that receives from several goroutines, one per handler it may
// run at once: the dispatcher's Concurrency does not limit Run's callers,
// the driver does. Panics are recovered, a retry asked by Settle runs
// later on a worker (keeping del's slot), and Shutdown waits for Run's
// handler like any other. del.Lane must be empty: Run keeps no order.
//
// Like Submit, Run blocks while MaxPending deliveries are pending, and
// returns ctx's error if ctx ends first or mq.ErrClosed once Shutdown has
// begun; then del was not taken and the caller still owns it.
func (d *Dispatcher) Run(ctx context.Context, del *Delivery) error {
	if del.Lane != "" {
		return fmt.Errorf("driver: Run takes no ordering lane (got %q); use Submit", del.Lane)
	}
	if err := ctx.Err(); err != nil {
		return err // even with a slot free: admit's select would pick at random
	}
	if err := d.admit(ctx); err != nil {
		return err
	}
	d.mu.Unlock()
	d.run(del)
	return nil
}

// admit takes one pending slot for Submit or Run and counts the delivery
// as pending. On success it returns with d.mu held; on failure (ctx's
// error, or mq.ErrClosed once Shutdown has begun) the slot is free again
// and d.mu is not held.
func (d *Dispatcher) admit(ctx context.Context) error {
	if d.closed.Load() {
		return mq.ErrClosed
	}
	// A free slot is taken at once, without the dearer select that
	// also waits for ctx and closing.
	select {
	case d.slots <- struct{}{}:
	default:
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-d.closing:
			return mq.ErrClosed
		}
	}
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		<-d.slots
		return mq.ErrClosed
	}
	d.pending++
	return nil
}

// Pending returns the number of deliveries submitted and not yet settled.
func (d *Dispatcher) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending
}

// InFlight returns the number of handlers running now.
func (d *Dispatcher) InFlight() int {
	return int(d.inFlight.Load())
}

// Shutdown stops accepting deliveries, releases those not yet started
// (Settle with ErrNotHandled), and waits for running handlers to return
// and be settled. If ctx ends first it cancels the handlers' context,
// still waits for them to return, and returns ctx.Err(). It is safe to
// call more than once.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	var released []*Delivery
	if !d.stopping {
		d.stopping = true
		close(d.closing)
		d.closed.Store(true)
		if d.pending == 0 {
			d.becomeIdle()
		}
		for del, t := range d.waiting {
			// A timer that already fired has its resume waiting for
			// the lock: it will queue del, and a worker releases it.
			if t.Stop() {
				released = append(released, del)
				delete(d.waiting, del)
			}
		}
	}
	d.mu.Unlock()
	for _, del := range released {
		del.Settler.Settle(d.sctx, ErrNotHandled)
		d.done(del)
	}

	var err error
	select {
	case <-d.idle:
	case <-ctx.Done():
		err = ctx.Err()
		d.cancel()
		<-d.idle
	}
	d.cancel()
	d.workers.Wait()
	return err
}

func (d *Dispatcher) work() {
	defer d.workers.Done()
	for del := range d.ready {
		d.run(del)
	}
}

// becomeIdle marks the end of a stopping dispatcher's work; d.mu must be
// held, d.stopping set and nothing pending. It closes ready as well:
// deliveries are sent to it only while they are pending (by Submit after
// admit, by resume, by done for a lane's next), and admit refuses new ones
// once stopping, so nothing is sent to it after this.
func (d *Dispatcher) becomeIdle() {
	close(d.idle)
	close(d.ready)
}

// run handles del once. If Settle asks for a retry, del keeps its lane
// and its slot but not the worker: a timer puts it back in the ready queue
// after the delay, so other lanes go on meanwhile. Otherwise run hands the
// lane to the next delivery.
//
// A delivery is released unstarted (ErrNotHandled) once Shutdown has
// begun or the handlers' context has ended: its handler would only see a
// canceled context, and its failure would count as an attempt.
func (d *Dispatcher) run(del *Delivery) {
	if d.isStopping() || d.hctx.Err() != nil {
		del.Settler.Settle(d.sctx, ErrNotHandled)
		d.done(del)
		return
	}
	var err error
	if del.Begin != nil {
		err = del.Begin(del)
	}
	if err == nil {
		d.inFlight.Add(1)
		err = d.call(del.Msg)
		d.inFlight.Add(-1)
	}
	delay, retry := del.Settler.Settle(d.sctx, err)
	if !retry {
		d.done(del)
		return
	}
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		del.Settler.Settle(d.sctx, ErrNotHandled)
		d.done(del)
		return
	}
	del.Msg.Attempt++
	d.waiting[del] = time.AfterFunc(max(delay, 0), func() { d.resume(del) })
	d.mu.Unlock()
}

// resume puts a delivery whose retry delay has passed back in the ready
// queue, unless Shutdown has already released it.
func (d *Dispatcher) resume(del *Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.waiting[del]; !ok {
		return
	}
	delete(d.waiting, del)
	d.startWorkers() // del may have come from Run
	d.ready <- del   // never blocks: del holds one of MaxPending slots
}

func (d *Dispatcher) isStopping() bool {
	return d.closed.Load()
}

// done releases del's slot and starts the next delivery of its lane.
func (d *Dispatcher) done(del *Delivery) {
	d.mu.Lock()
	if del.Lane != "" {
		if q := d.lanes[del.Lane]; len(q) > 0 {
			d.ready <- q[0]
			q[0] = nil
			if len(q) == 1 {
				d.lanes[del.Lane] = nil
			} else {
				d.lanes[del.Lane] = q[1:]
			}
		} else {
			delete(d.lanes, del.Lane)
		}
	}
	d.pending--
	if d.stopping && d.pending == 0 {
		d.becomeIdle()
	}
	d.mu.Unlock()
	<-d.slots
}

// call runs the handler, turning a panic into an error. A handler's own
// ErrNotHandled becomes a plain failure: only the dispatcher releases a
// delivery without counting an attempt.
func (d *Dispatcher) call(m *mq.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("mq: handler panicked; the message will be redelivered",
				"topic", m.Topic, "group", m.Group, "id", m.ID, "attempt", m.Attempt,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("mq: handler panicked: %v", p)
		}
	}()
	err = d.h(d.hctx, m)
	if errors.Is(err, ErrNotHandled) {
		err = fmt.Errorf("mq: the handler returned %v, which only drivers may use; counted as a failure", err)
	}
	return err
}
