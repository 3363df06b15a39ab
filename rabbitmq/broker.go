package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

func init() {
	open := func(ctx context.Context, u *url.URL) (mq.Broker, error) {
		return New(ctx, Options{URL: u.String()})
	}
	mq.Register("amqp", open)
	mq.Register("amqps", open)
}

// Broker is a RabbitMQ connection pair (one connection for publishing, one
// for consuming) implementing mq.Broker, mq.Provisioner and mq.Pinger.
// All methods are safe for concurrent use. Create it with New or mq.Open.
type Broker struct {
	s    *settings
	pub  *link // publishing connection
	sub  *link // consuming connection
	pubs *publisher
	topo *topology

	stop     context.Context // canceled when shutdown releases the links
	stopLink context.CancelFunc
	wg       sync.WaitGroup // background goroutines
	bgMu     sync.Mutex
	bgDone   bool // set before wg.Wait: spawn starts nothing more

	closingCtx context.Context    // canceled when Close begins
	closeNow   context.CancelFunc // cancels closingCtx

	mu       sync.Mutex
	closeCtx context.Context // Close's ctx, for draining subscriptions
	closed   bool
	subs     sync.WaitGroup // running Subscribe calls
	calls    sync.WaitGroup // running Publish, Provision and Ping calls
}

// New connects to the broker described by o and returns it. It dials
// once, bounded by ctx, so that a wrong address or wrong credentials fail
// here with a clear error; later connection losses are repaired in the
// background. The password never appears in errors or logs.
func New(ctx context.Context, o Options) (*Broker, error) {
	s, err := resolve(o)
	if err != nil {
		return nil, err
	}
	stop, cancel := context.WithCancel(context.Background())
	b := &Broker{s: s, stop: stop, stopLink: cancel}
	b.closingCtx, b.closeNow = context.WithCancel(context.Background())
	b.pub = newLink(s, "publish", stop, &b.wg)
	b.sub = newLink(s, "consume", stop, &b.wg)
	b.pubs = newPublisher(b)
	b.topo = newTopology(b)

	conn, err := dial(ctx, s)
	if err != nil {
		cancel()
		b.closeNow()
		return nil, err
	}
	b.pub.mu.Lock()
	b.pub.conn = conn
	b.pub.gen = 1
	b.pub.watch(conn, 1)
	b.pub.mu.Unlock()
	return b, nil
}

// String describes the broker without its password.
func (b *Broker) String() string { return "rabbitmq(" + b.s.redacted + ")" }

// Capabilities reports what the driver offers: fan-out, delayed
// redelivery of failed messages (not with NoProvision), persistence; no
// ordering by key, no replay, no delayed publishing.
func (b *Broker) Capabilities() mq.Capabilities {
	return mq.Capabilities{
		Driver:          "rabbitmq",
		FanOut:          true,
		OrderingByKey:   false,
		Replay:          false,
		NackDelay:       !b.s.NoProvision,
		DelayedDelivery: false,
		Persistent:      true,
		MaxMessageBytes: b.s.MaxMessageBytes,
		MaxHeaders:      0,
	}
}

// isClosed returns ErrClosed once Close has begun.
func (b *Broker) isClosed() error {
	if b.closingCtx.Err() != nil {
		return errClosed
	}
	return nil
}

// enter registers a running call in wg unless Close has begun.
func (b *Broker) enter(wg *sync.WaitGroup) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	wg.Add(1)
	return nil
}

// Publish sends msgs to topic's exchange as persistent messages and
// returns nil once the broker has confirmed every one. Concurrent calls
// share a few confirm-mode channels and are pipelined: nothing waits for
// a round trip per message. While the connection is down Publish waits
// for it (bounded by ctx) and resends messages that were not confirmed,
// so a message may be stored twice but is never reported as sent without
// a confirm. A message that no queue receives (the topic has no group)
// fails with an error wrapping mq.ErrNotFound unless AllowUnroutable is
// set. Failures of some messages are reported as *mq.PublishError. After
// Close, Publish returns mq.ErrClosed.
func (b *Broker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := b.enter(&b.calls); err != nil {
		return err
	}
	defer b.calls.Done()
	if err := driver.ValidateName("topic", topic); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	if err := driver.PrepareMessages(msgs, driver.LimitsOf(b.Capabilities())); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	if err := checkMessages(msgs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.topo.exchange(ctx, topic); err != nil {
		return err
	}
	out := make([]outMsg, len(msgs))
	for i, m := range msgs {
		out[i] = outMsg{exchange: topic, key: m.Key, pub: encode(m)}
	}
	if err := b.pubs.send(ctx, out, !b.s.AllowUnroutable); err != nil {
		if errors.Is(err, mq.ErrClosed) {
			return errClosed
		}
		return err
	}
	var pe *mq.PublishError
	for i := range out {
		e := out[i].err
		if e == nil {
			continue
		}
		if pe == nil {
			pe = &mq.PublishError{Total: len(msgs)}
		}
		pe.Failures = append(pe.Failures, mq.PublishFailure{Index: i, ID: msgs[i].ID, Err: e})
		if errors.Is(e, mq.ErrNotFound) && !b.s.NoProvision {
			b.topo.forgetExchange(topic)
		}
	}
	if pe != nil {
		if len(msgs) == 1 {
			return pe.Failures[0].Err
		}
		return pe
	}
	return nil
}

// Provision declares topic's exchange and a durable queue for each group,
// bound to it, so that messages published from now on wait in those
// queues until a subscriber takes them. It is idempotent. With
// NoProvision it only checks that they exist, returning an error wrapping
// mq.ErrNotFound if one does not.
func (b *Broker) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := b.enter(&b.calls); err != nil {
		return err
	}
	defer b.calls.Done()
	if err := driver.ValidateName("topic", topic); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	for _, g := range groups {
		if err := driver.ValidateName("group", g); err != nil {
			return fmt.Errorf("rabbitmq: %w", err)
		}
	}
	if err := b.topo.exchange(ctx, topic); err != nil {
		return err
	}
	for _, g := range groups {
		if err := b.topo.queue(ctx, topic, g); err != nil {
			return err
		}
	}
	return nil
}

// Ping checks that the broker answers: it opens and closes a channel on
// the publishing connection, reconnecting first if needed, within ctx.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.enter(&b.calls); err != nil {
		return err
	}
	defer b.calls.Done()
	conn, _, err := b.pub.get(ctx)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return driver.Retryable(fmt.Errorf("rabbitmq: ping: %w", err))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// As exposes the native client: *amqp091.Connection (the publishing
// connection) and *amqp091.Channel (a new channel on it, which the caller
// must close). It returns false after Close or while disconnected.
func (b *Broker) As(target any) bool {
	if b.isClosed() != nil {
		return false
	}
	switch t := target.(type) {
	case **amqp.Connection:
		c := b.pub.current()
		if c == nil {
			return false
		}
		*t = c
		return true
	case **amqp.Channel:
		c := b.pub.current()
		if c == nil {
			return false
		}
		ch, err := c.Channel()
		if err != nil {
			return false
		}
		*t = ch
		return true
	}
	return false
}

// Close shuts the broker down gracefully: running subscriptions stop
// fetching, let their handlers finish and settle (acks reach the broker
// before the consuming channel closes) and return mq.ErrClosed; pending
// publishes finish; then both connections close. If ctx ends first,
// handler contexts are canceled and Close returns ctx.Err() once they have
// returned. Close is idempotent: later calls return nil, and every other
// method returns mq.ErrClosed.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.closeCtx = ctx
	b.closeNow()
	b.mu.Unlock()

	var err error
	if e := waitGroup(ctx, &b.subs); e != nil {
		err = e
		b.subs.Wait() // handlers were canceled; they must return
	}
	// Publish calls in progress finish, bounded by ctx; if ctx has ended
	// already, they get 5 more seconds to collect their confirms.
	pctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	if e := waitGroup(pctx, &b.calls); e != nil && err == nil {
		err = e
	}
	b.stopLink()
	b.pub.shutdown(ctx) // closing a connection closes its channels
	b.sub.shutdown(ctx)
	b.bgMu.Lock()
	b.bgDone = true
	b.bgMu.Unlock()
	b.wg.Wait()
	return err
}

// spawn runs f in a goroutine that Close waits for, unless Close is
// already waiting; it reports whether it started f.
func (b *Broker) spawn(f func()) bool {
	b.bgMu.Lock()
	defer b.bgMu.Unlock()
	if b.bgDone {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// closeContext returns the ctx given to Close.
func (b *Broker) closeContext() context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closeCtx == nil {
		return context.Background()
	}
	return b.closeCtx
}

// waitGroup waits for wg or ctx.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errClosed is mq.ErrClosed with the package prefix.
var errClosed = fmt.Errorf("rabbitmq: %w", mq.ErrClosed)
