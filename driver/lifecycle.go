package driver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seedmq/mq"
)

// CloseGrace is how long Lifecycle.Close waits for running calls after
// its context has ended (the drain context is canceled then, so handlers
// see their context end), before it returns the context's error anyway.
const CloseGrace = time.Second

// Lifecycle is the open / closing / closed state machine every broker
// needs, in one place: it tracks the calls and goroutines running on the
// broker, tells them when Close begins, gives them a context that ends
// when Close's context does, and makes Close idempotent.
//
// The zero value is open and ready to use. A Lifecycle must not be copied
// after first use. All methods are safe for concurrent use.
type Lifecycle struct {
	mu      sync.Mutex
	inited  bool
	closed  bool
	shut    atomic.Bool     // closed, for Err without the lock
	closing chan struct{}   // closed when Close begins
	done    chan struct{}   // closed when the first Close returns
	drain   context.Context // ends when Close's context ends
	cancel  context.CancelCauseFunc
	calls   sync.WaitGroup
	exit    func() // calls.Done, made once: Enter returns it without allocating
}

func (l *Lifecycle) init() {
	if !l.inited {
		l.inited = true
		l.closing = make(chan struct{})
		l.done = make(chan struct{})
		l.drain, l.cancel = context.WithCancelCause(context.Background())
		l.exit = l.calls.Done
	}
}

// Enter registers a running call, such as Subscribe or a background
// loop, that Close must wait for; call exit when it returns. Once Close
// has begun, Enter returns mq.ErrClosed and registers nothing.
func (l *Lifecycle) Enter() (exit func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if l.closed {
		return nil, mq.ErrClosed
	}
	l.calls.Add(1)
	return l.exit, nil
}

// Go runs f in a new goroutine that Close waits for, and reports true;
// once Close has begun it runs nothing and reports false.
func (l *Lifecycle) Go(f func()) bool {
	exit, err := l.Enter()
	if err != nil {
		return false
	}
	go func() {
		defer exit()
		f()
	}()
	return true
}

// Closing returns a channel that is closed when Close begins. Running
// calls watch it to stop fetching and begin draining.
func (l *Lifecycle) Closing() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	return l.closing
}

// Err returns mq.ErrClosed once Close has begun, and nil before.
func (l *Lifecycle) Err() error {
	if l.shut.Load() {
		return mq.ErrClosed
	}
	return nil
}

// DrainContext returns a context that is canceled when the context given
// to Close ends (with its error as the cause); until then, and before
// Close, it never ends. Drivers bound draining with it: finishing
// in-flight handlers, flushing acknowledgements and publishes.
func (l *Lifecycle) DrainContext() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	return l.drain
}

// Close begins closing: Enter refuses new calls, Closing's channel is
// closed, and DrainContext starts following ctx. It then waits for the
// calls registered with Enter or Go to return, and runs finish (which may
// be nil) to release what the broker holds, such as connections.
//
// If ctx ends while calls are running, Close waits CloseGrace more for
// them, then runs finish and returns ctx's error, unwrapped. Otherwise it
// returns finish's error. A second or concurrent Close waits for the first
// (or for its own ctx) and returns nil.
func (l *Lifecycle) Close(ctx context.Context, finish func(context.Context) error) error {
	l.mu.Lock()
	l.init()
	if l.closed {
		done := l.done
		l.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return nil
	}
	l.closed = true
	l.shut.Store(true)
	close(l.closing)
	l.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { l.cancel(context.Cause(ctx)) })
	defer stop()
	idle := make(chan struct{})
	go func() {
		l.calls.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		t := time.NewTimer(CloseGrace)
		select {
		case <-idle:
		case <-t.C:
		}
		t.Stop()
	}
	var err error
	if finish != nil {
		err = finish(ctx)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	close(l.done)
	return err
}
