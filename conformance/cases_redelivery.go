package conformance

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// redeliveryCases check at-least-once delivery: failed, panicked and
// unfinished messages come back with a higher attempt; acknowledged and
// permanently failed ones do not.
var redeliveryCases = []testCase{
	{name: "nack-redelivers", run: nackRedelivers},
	{name: "nack-delay", needs: []mq.Capability{mq.CapNackDelay}, run: nackDelay},
	{name: "retry-after", needs: []mq.Capability{mq.CapNackDelay}, run: retryAfter},
	{name: "failing-does-not-stall", run: failingDoesNotStall},
	{name: "permanent-not-redelivered", run: permanentNotRedelivered},
	{name: "panic-redelivered", run: panicRedelivered},
	{name: "acked-not-redelivered", run: ackedNotRedelivered},
	{name: "unacked-redelivered", run: unackedRedelivered},
	{name: "close-deadline-redelivers", run: closeDeadlineRedelivers},
	{name: "close-drains", run: closeDrains},
}

// errNack is what handlers return to ask for redelivery.
var errNack = errors.New("conformance: deliberate failure")

// quick redelivers failed messages almost at once.
var quick = constantBackoff(10 * time.Millisecond)

// nackRedelivers: a handler error redelivers the message to the same
// group with Attempt 2, then 3; once acknowledged it is not delivered
// again.
func nackRedelivers(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := numbered(3, "nack")
	e.publish(t, b, e.topic, msgs...)
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		if m.Attempt < 3 {
			return errNack
		}
		return nil
	}), quick)
	e.awaitAcked(t, c, "acknowledged on their third attempt", ids(msgs))
	for _, m := range msgs {
		if got := c.attempts(m.ID); !slices.Equal(got, []int{1, 2, 3}) {
			t.Errorf("message %s: attempts: got %v, want [1 2 3]", m.ID, got)
		}
		for _, r := range c.deliveries(m.ID) {
			if r.msg.Group != e.group || r.msg.Topic != e.topic {
				t.Errorf("message %s attempt %d: delivered to topic %q group %q, want %q %q", m.ID, r.msg.Attempt, r.msg.Topic, r.msg.Group, e.topic, e.group)
			}
		}
	}
	e.never(t, c, "a message was delivered again after it was acknowledged", func() bool {
		return slices.ContainsFunc(msgs, func(m *mq.Message) bool { return c.count(m.ID) > 3 })
	})
}

// delayTolerance absorbs timer granularity when checking that a delay
// was honoured.
const delayTolerance = 100 * time.Millisecond

// checkRedeliveryGap checks that attempt 2 of id started no earlier than
// delay after attempt 1 returned.
func checkRedeliveryGap(t *testing.T, c *collector, id string, failedAt time.Time, delay time.Duration) {
	t.Helper()
	d := c.deliveries(id)
	if len(d) < 2 {
		t.Fatalf("message %s: got %d deliveries, want 2", id, len(d))
	}
	if d[1].msg.Attempt != 2 {
		t.Errorf("message %s: second delivery Attempt: got %d, want 2", id, d[1].msg.Attempt)
	}
	if gap := d[1].at.Sub(failedAt); gap < delay-delayTolerance {
		t.Errorf("message %s redelivered %v after its handler failed, want no earlier than %v", id, gap, delay)
	} else {
		t.Logf("redelivered %v after the failure (delay %v)", gap, delay)
	}
}

// nackDelay: the subscription's Backoff is honoured.
func nackDelay(t *testing.T, e *env) {
	const delay = time.Second
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	m := &mq.Message{Body: []byte("later")}
	e.publish(t, b, e.topic, m)
	c := newCollector()
	failedAt := make(chan time.Time, 1)
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		if m.Attempt == 1 {
			failedAt <- time.Now()
			return errNack
		}
		return nil
	}), constantBackoff(delay))
	e.awaitAcked(t, c, "redelivered after the backoff", []string{m.ID})
	checkRedeliveryGap(t, c, m.ID, <-failedAt, delay)
}

// retryAfter: mq.RetryAfter overrides the Backoff for one failure.
func retryAfter(t *testing.T, e *env) {
	const delay = 1500 * time.Millisecond
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	m := &mq.Message{Body: []byte("retry after")}
	e.publish(t, b, e.topic, m)
	c := newCollector()
	failedAt := make(chan time.Time, 1)
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		if m.Attempt == 1 {
			failedAt <- time.Now()
			return mq.RetryAfter(errNack, delay)
		}
		return nil
	}), quick)
	e.awaitAcked(t, c, "redelivered after the RetryAfter delay", []string{m.ID})
	checkRedeliveryGap(t, c, m.ID, <-failedAt, delay)
}

// permanentNotRedelivered: a handler's mq.Permanent error means the
// message is not redelivered, and the subscription goes on.
func permanentNotRedelivered(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	bad := &mq.Message{Key: "bad", Body: []byte("poison")}
	good := &mq.Message{Key: "good", Body: []byte("fine")}
	e.publish(t, b, e.topic, bad, good)
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		if m.ID == bad.ID {
			return mq.Permanent(errors.New("conformance: cannot ever handle this"))
		}
		return nil
	}), quick)
	e.awaitAcked(t, c, "the good message", []string{good.ID})
	e.await(t, c, "the permanently failing message to be handled", func() bool {
		d := c.deliveries(bad.ID)
		return len(d) > 0 && d[0].done
	})
	e.never(t, c, "a message whose handler returned mq.Permanent was redelivered", func() bool { return c.count(bad.ID) > 1 })
	// The subscription still works after the permanent failure.
	after := &mq.Message{Body: []byte("after")}
	e.publish(t, b, e.topic, after)
	e.awaitAcked(t, c, "a message published after the permanent failure", []string{after.ID})
}

// panicRedelivered: a panicking handler is recovered, the message is
// redelivered with Attempt 2, and the subscription keeps running.
func panicRedelivered(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	m := &mq.Message{Body: []byte("panics once")}
	e.publish(t, b, e.topic, m)
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, msg *mq.Message) error {
		if msg.ID == m.ID && msg.Attempt == 1 {
			panic("conformance: deliberate panic in a handler (expected in the log)")
		}
		return nil
	}), quick)
	e.awaitAcked(t, c, "redelivered after a panic", []string{m.ID})
	if got := c.attempts(m.ID); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("attempts: got %v, want [1 2]", got)
	}
	after := &mq.Message{Body: []byte("after the panic")}
	e.publish(t, b, e.topic, after)
	e.awaitAcked(t, c, "a message published after the panic", []string{after.ID})
}

// ackedNotRedelivered: messages acknowledged before a subscriber's
// connection closed are not delivered to the next subscriber of the
// group.
func ackedNotRedelivered(t *testing.T, e *env) {
	pub, first := e.open(t), e.open(t)
	e.provision(t, pub, e.topic, e.group)
	msgs := numbered(10, "acked")
	e.publish(t, pub, e.topic, msgs...)
	c1 := newCollector()
	s1 := e.sub(t, first, c1.handler(1, nil))
	e.awaitAcked(t, c1, "the first subscriber", ids(msgs))
	s1.expectEnd()
	e.close(t, first)
	if err := e.wait(t, s1); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Subscribe after its broker was closed: got %v, want ErrClosed", err)
	}

	c2 := newCollector()
	e.sub(t, e.open(t), c2.handler(2, nil))
	marker := &mq.Message{Body: []byte("marker")}
	e.publish(t, pub, e.topic, marker)
	e.awaitAcked(t, c2, "a marker published after the restart", []string{marker.ID})
	e.never(t, c2, "a message acknowledged before the restart was delivered again", func() bool {
		return slices.ContainsFunc(msgs, func(m *mq.Message) bool { return c2.count(m.ID) > 0 })
	})
}

// blockUntilCanceled is a handler that holds its message until its ctx
// is canceled, reporting the first message it got on started.
func blockUntilCanceled(started chan<- string) mq.Handler {
	return func(ctx context.Context, m *mq.Message) error {
		select {
		case started <- m.ID:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

// unackedRedelivered: a message whose handler was still running when its
// subscription was canceled is redelivered to the next subscriber of the
// group, on another connection, with a higher attempt.
func unackedRedelivered(t *testing.T, e *env) {
	b1 := e.open(t)
	e.provision(t, b1, e.topic, e.group)
	m := &mq.Message{Body: []byte("unfinished")}
	e.publish(t, b1, e.topic, m)
	c1 := newCollector()
	started := make(chan string, 1)
	s1 := e.sub(t, b1, c1.handler(1, blockUntilCanceled(started)))
	e.await(t, c1, "the message to reach the blocking handler", func() bool { return c1.count(m.ID) > 0 })
	e.stop(t, s1)
	e.close(t, b1)

	c2 := newCollector()
	e.sub(t, e.open(t), c2.handler(2, nil))
	e.awaitAcked(t, c2, "redelivered to the next subscriber", []string{m.ID})
	if a := c2.deliveries(m.ID)[0].msg.Attempt; a < 2 {
		t.Errorf("Attempt of the redelivery: got %d, want at least 2 (the first delivery was nacked by the canceled handler)", a)
	}
}

// closeDeadlineRedelivers: when Close's ctx ends before a handler
// finishes, the handler's ctx is canceled, Close returns the ctx error,
// Subscribe returns ErrClosed, and the message is redelivered.
func closeDeadlineRedelivers(t *testing.T, e *env) {
	b1 := e.open(t)
	e.provision(t, b1, e.topic, e.group)
	m := &mq.Message{Body: []byte("held past the close deadline")}
	e.publish(t, b1, e.topic, m)
	c1 := newCollector()
	s1 := e.sub(t, b1, c1.handler(1, blockUntilCanceled(nil)))
	e.await(t, c1, "the message to reach the blocking handler", func() bool { return c1.count(m.ID) > 0 })
	s1.expectEnd()
	// The deadline is what Close is given to drain; the handler never
	// finishes on its own, so Close must cancel it when the deadline ends.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b1.Close(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with a handler still running past its ctx deadline: got %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(e.timeout):
		logStacks(t)
		t.Fatalf("Close did not return within %v of its ctx deadline; it must cancel running handlers", e.timeout)
	}
	if err := e.wait(t, s1); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want ErrClosed", err)
	}
	if r := c1.deliveries(m.ID)[0]; !r.done || !errors.Is(r.err, context.DeadlineExceeded) && !errors.Is(r.err, context.Canceled) {
		t.Errorf("blocking handler: done %v, result %v; want it to have returned its canceled ctx's error", r.done, r.err)
	}

	c2 := newCollector()
	e.sub(t, e.open(t), c2.handler(2, nil))
	e.awaitAcked(t, c2, "redelivered to the next subscriber", []string{m.ID})
	if a := c2.deliveries(m.ID)[0].msg.Attempt; a < 2 {
		t.Errorf("Attempt of the redelivery: got %d, want at least 2", a)
	}
}

// closeDrains: Close lets a running handler finish with its ctx intact;
// its message is acknowledged and not redelivered; Subscribe returns
// ErrClosed; messages not handled before Close reach the next subscriber.
func closeDrains(t *testing.T, e *env) {
	pub, b1 := e.open(t), e.open(t)
	e.provision(t, pub, e.topic, e.group)
	msgs := []*mq.Message{{Key: "k", Body: []byte("first")}, {Key: "k", Body: []byte("second")}}
	e.publish(t, pub, e.topic, msgs...)

	c1 := newCollector()
	var holding atomic.Bool
	started := make(chan string, 1)
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	s1 := e.sub(t, b1, c1.handler(1, func(ctx context.Context, m *mq.Message) error {
		// Only the first delivery holds until released. A later one (the
		// second message, when a driver starts it while Close is still
		// stopping the subscription) returns at once: were it to hold
		// too, nothing would release it, and Close would wait forever on
		// the test rather than on the driver.
		if !holding.CompareAndSwap(false, true) {
			return nil
		}
		started <- m.ID
		select {
		case <-release:
		case <-ctx.Done():
		}
		ctxErr <- ctx.Err()
		return ctx.Err()
	}))
	var held string
	select {
	case held = <-started:
	case <-time.After(e.timeout):
		t.Fatalf("timed out after %v waiting for a delivery; %s", e.timeout, c1.summary())
	}

	s1.expectEnd()
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		defer cancel()
		closed <- b1.Close(ctx)
	}()
	// Release the handler only once Close has begun, which every later
	// call observes as ErrClosed.
	e.eventually(t, "Ping to return ErrClosed once Close has begun", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		defer cancel()
		return errors.Is(mq.Ping(ctx, b1), mq.ErrClosed)
	})
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close while a handler finished within its ctx: got %v, want nil", err)
		}
	case <-time.After(e.timeout):
		logStacks(t)
		t.Fatalf("Close did not return within %v after the running handler returned", e.timeout)
	}
	if err := <-ctxErr; err != nil {
		t.Errorf("the running handler's ctx during a graceful Close: got %v, want it not canceled", err)
	}
	if err := e.wait(t, s1); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want ErrClosed", err)
	}

	c2 := newCollector()
	e.sub(t, e.open(t), c2.handler(2, nil))
	marker := &mq.Message{Key: "k", Body: []byte("marker")}
	e.publish(t, pub, e.topic, marker)
	e.awaitAcked(t, c2, "the marker", []string{marker.ID})
	for _, m := range msgs {
		if c1.acks(m.ID)+c2.acks(m.ID) == 0 {
			e.awaitAcked(t, c2, "a message not handled before Close", []string{m.ID})
		}
	}
	e.never(t, c2, "the message whose handler finished during Close was delivered again", func() bool { return c2.count(held) > 0 })
}

// failingDoesNotStall: with Concurrency(1), a message that keeps failing
// waits out its redelivery delay without holding the subscription's only
// handler slot, so a message of another key published after it is handled
// meanwhile. (Regression: the shared dispatcher once slept through
// in-place retry delays on the worker, which stalled every other key on
// Kafka.)
func failingDoesNotStall(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	first := &mq.Message{Key: "a", Body: []byte("fails until b is done")}
	e.publish(t, b, e.topic, first)
	// The ID is set here, not by Publish, because the handler reads it
	// while Publish runs.
	second := &mq.Message{ID: mq.NewID(), Key: "b", Body: []byte("must not wait for a")}
	var secondDone atomic.Bool
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		if m.ID == second.ID {
			secondDone.Store(true)
			return nil
		}
		if m.ID == first.ID && !secondDone.Load() {
			return errNack
		}
		return nil
	}), mq.Concurrency(1), constantBackoff(200*time.Millisecond))
	e.await(t, c, "the failing message's first delivery", func() bool { return c.count(first.ID) > 0 })
	e.publish(t, b, e.topic, second)
	e.awaitAcked(t, c, "both messages, the second while the first waits to be redelivered", []string{first.ID, second.ID})
	t.Logf("failing message delivered %d times before the other one was done", c.count(first.ID))
}
