package conformance

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seedmq/mq"
)

// lifecycleCases check cancellation, Close, reconnection and
// provisioning.
var lifecycleCases = []testCase{
	{name: "ping", run: ping},
	{name: "provision-idempotent", run: provisionIdempotent},
	{name: "cancel-no-leak", run: cancelNoLeak},
	{name: "subscribe-canceled-ctx", run: subscribeCanceledCtx},
	{name: "publish-ctx-done", run: publishCtxDone},
	{name: "use-after-close", run: useAfterClose},
	{name: "double-close", run: doubleClose},
	{name: "subscribe-close-race", run: subscribeCloseRace},
	{name: "resubscribe-while-publishing", run: resubscribeWhilePublishing},
	{name: "no-provision-missing", run: noProvisionMissing},
	{name: "no-provision-existing", run: noProvisionExisting},
	{name: "broker-restart", needs: []mq.Capability{mq.CapPersistent}, run: brokerRestart},
}

// ping: an open connection answers Ping.
func ping(t *testing.T, e *env) {
	b := e.open(t)
	if err := mq.Ping(e.ctx(t), b); err != nil {
		t.Errorf("Ping: got %v, want nil", err)
	}
}

// provisionIdempotent: provisioning the same topic and group twice is
// fine, and the topic then works.
func provisionIdempotent(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	e.provision(t, b, e.topic, e.group)
	e.provision(t, e.open(t), e.topic, e.group) // and from another connection
	m := &mq.Message{Body: []byte("after provisioning twice")}
	e.publish(t, b, e.topic, m)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.awaitAcked(t, c, "on a topic provisioned three times", []string{m.ID})
}

// cancelNoLeak: canceling Subscribe's ctx makes it return
// context.Canceled promptly, and once the connection is closed none of
// the goroutines it started is left.
func cancelNoLeak(t *testing.T, e *env) {
	// Snapshot before opening: goroutines the connection starts at Open
	// must end at Close too.
	leakOpts := []goleak.Option{goleak.IgnoreCurrent()}
	for _, f := range e.h.LeakIgnore {
		leakOpts = append(leakOpts, goleak.IgnoreAnyFunction(f))
	}
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	c := newCollector()
	s := e.sub(t, b, c.handler(0, nil), mq.Concurrency(4))
	m := &mq.Message{Body: []byte("one")}
	e.publish(t, b, e.topic, m)
	e.awaitAcked(t, c, "a message before the cancel", []string{m.ID})

	// Promptly: a long poll or a group leave must not hold Subscribe up
	// for long after its ctx is canceled.
	prompt := min(e.timeout, 5*time.Second)
	s.expectEnd()
	start := time.Now()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(prompt):
		logStacks(t)
		t.Fatalf("Subscribe did not return within %v of its ctx being canceled", prompt)
	}
	if !errors.Is(s.err, context.Canceled) {
		t.Errorf("Subscribe after its ctx was canceled: got %v, want context.Canceled", s.err)
	}
	t.Logf("Subscribe returned %v after cancel", time.Since(start))
	e.close(t, b)
	goleak.VerifyNone(t, leakOpts...)
}

// subscribeCanceledCtx: Subscribe with a ctx already canceled returns
// context.Canceled at once.
func subscribeCanceledCtx(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, e.topic, newCollector().handler(0, nil), mq.Group(e.group)) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe with a canceled ctx: got %v, want context.Canceled", err)
		}
	case <-time.After(e.timeout):
		logStacks(t)
		t.Fatalf("Subscribe with a canceled ctx did not return within %v", e.timeout)
	}
}

// publishCtxDone: Publish with a canceled or expired ctx returns an
// error that is the ctx's error.
func publishCtxDone(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(canceled, e.topic, &mq.Message{Body: []byte("x")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a canceled ctx: got %v, want errors.Is(err, context.Canceled)", err)
	}
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if err := b.Publish(expired, e.topic, &mq.Message{Body: []byte("y")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish with an expired ctx: got %v, want errors.Is(err, context.DeadlineExceeded)", err)
	}
	// The connection still works.
	m := &mq.Message{Body: []byte("z")}
	e.publish(t, b, e.topic, m)
}

// useAfterClose: every method of a closed connection returns ErrClosed.
func useAfterClose(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	e.close(t, b)
	ctx := e.ctx(t)
	if err := b.Publish(ctx, e.topic, &mq.Message{Body: []byte("late")}); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Publish after Close: got %v, want ErrClosed", err)
	}
	s := e.sub(t, b, newCollector().handler(0, nil))
	if err := e.wait(t, s); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want ErrClosed", err)
	}
	if err := mq.Ping(ctx, b); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Ping after Close: got %v, want ErrClosed", err)
	}
	if err := mq.Provision(ctx, b, e.topic, e.group); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Provision after Close: got %v, want ErrClosed", err)
	}
}

// doubleClose: Close is idempotent, also when called concurrently.
func doubleClose(t *testing.T, e *env) {
	b := e.open(t)
	e.close(t, b)
	e.close(t, b) // the second Close must return nil too
	b2 := e.open(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { e.close(t, b2) })
	}
	wg.Wait()
}

// subscribeCloseRace: Subscribe calls starting while Close runs all
// return ErrClosed, without panics, hangs or data races.
func subscribeCloseRace(t *testing.T, e *env) {
	const rounds, subs = 3, 4
	setup := e.open(t)
	e.provision(t, setup, e.topic, e.group)
	e.publish(t, setup, e.topic, numbered(20, "race")...)
	for round := range rounds {
		b := e.open(t)
		c := newCollector()
		var ss []*subscription
		for range subs / 2 {
			ss = append(ss, e.sub(t, b, c.handler(round, nil)))
		}
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			e.close(t, b)
		}()
		for range subs / 2 {
			ss = append(ss, e.sub(t, b, c.handler(round, nil)))
		}
		for i, s := range ss {
			if err := e.wait(t, s); !errors.Is(err, mq.ErrClosed) {
				t.Errorf("round %d: Subscribe %d racing Close: got %v, want ErrClosed", round, i, err)
			}
		}
		select {
		case <-closed:
		case <-time.After(e.timeout):
			logStacks(t)
			t.Fatalf("round %d: Close did not return within %v", round, e.timeout)
		}
	}
}

// resubscribeWhilePublishing: a subscriber that stops and subscribes
// again, five times, while messages are being published, loses none.
func resubscribeWhilePublishing(t *testing.T, e *env) {
	const rounds = 5
	pub, b := e.open(t), e.open(t)
	e.provision(t, pub, e.topic, e.group)
	c := newCollector()
	var all []string
	for round := range rounds {
		msgs := numbered(20, "r"+strconv.Itoa(round))
		s := e.sub(t, b, c.handler(round, nil))
		published := make(chan error, 1)
		go func() { published <- e.tryPublish(pub, e.topic, msgs...) }()
		e.await(t, c, "a delivery to subscription "+strconv.Itoa(round), func() bool {
			for _, r := range c.all() {
				if r.consumer == round {
					return true
				}
			}
			return false
		})
		if err := <-published; err != nil {
			t.Fatalf("round %d: Publish: %v", round, err)
		}
		all = append(all, ids(msgs)...) // filled by Publish
		e.stop(t, s)
	}
	e.sub(t, b, c.handler(rounds, nil))
	e.awaitAcked(t, c, "published across resubscriptions", all)
}

// needNoProvision skips the case without Harness.OpenNoProvision.
func needNoProvision(t *testing.T, e *env) mq.Broker {
	t.Helper()
	if e.h.OpenNoProvision == nil {
		t.Skip("skipped: Harness.OpenNoProvision is nil")
	}
	return e.openWith(t, "Harness.OpenNoProvision", e.h.OpenNoProvision)
}

// noProvisionMissing: with provisioning off, Publish and Subscribe on a
// topic that does not exist return ErrNotFound.
func noProvisionMissing(t *testing.T, e *env) {
	b := needNoProvision(t, e)
	err := e.tryPublish(b, e.topic, &mq.Message{Body: []byte("nowhere")})
	if !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("Publish to a missing topic with provisioning off: got %v, want ErrNotFound", err)
	}
	s := e.sub(t, b, newCollector().handler(0, nil))
	if err := e.wait(t, s); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("Subscribe to a missing topic with provisioning off: got %v, want ErrNotFound", err)
	}
}

// noProvisionExisting: with provisioning off, a provisioned topic and
// group work as usual.
func noProvisionExisting(t *testing.T, e *env) {
	e.provision(t, e.open(t), e.topic, e.group)
	b := needNoProvision(t, e)
	msgs := numbered(5, "existing")
	e.publish(t, b, e.topic, msgs...)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.awaitAcked(t, c, "on existing topology with provisioning off", ids(msgs))
}

// brokerRestart: messages published before and after a broker restart
// are all delivered, while a subscriber runs throughout (resubscribed if
// its Subscribe fails), and nothing acknowledged by Publish is lost. The
// handler holds everything after its first ten messages until the broker
// is back, so most of the first hundred are still waiting in the broker
// when it restarts: persistence is tested, not only reconnection.
func brokerRestart(t *testing.T, e *env) {
	if e.h.Restart == nil {
		t.Skip("skipped: Harness.Restart is nil")
	}
	const n, early = 100, 10
	pub, con := e.open(t), e.open(t)
	e.provision(t, pub, e.topic, e.group)
	c := newCollector()
	var handled atomic.Int32
	gate := make(chan struct{})
	var openGate sync.Once
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) })
	h := func(ctx context.Context, m *mq.Message) error {
		if handled.Add(1) > early {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}

	// The subscriber: drivers should ride out the restart inside one
	// Subscribe call; one that returns a failure is subscribed again, a
	// bounded number of times, as a service would.
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(e.timeout):
			logStacks(t)
			t.Errorf("Subscribe did not return within %v of its ctx being canceled", e.timeout)
		}
	})
	go func() {
		defer close(stopped)
		for i := 0; i < 20; i++ {
			err := con.Subscribe(ctx, e.topic, c.handler(i, h), mq.Group(e.group), mq.Concurrency(4))
			if ctx.Err() != nil {
				return
			}
			t.Logf("Subscribe returned %v during the restart; subscribing again", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond): // back off before retrying
			}
		}
	}()

	before := numbered(n, "before")
	e.publish(t, pub, e.topic, before...)
	e.await(t, c, "the first messages to be acknowledged before the restart", func() bool {
		acked := 0
		for _, id := range ids(before) {
			if c.acks(id) > 0 {
				acked++
			}
		}
		return acked >= early
	})
	t.Logf("restarting the broker with %d of %d messages acknowledged", len(ids(before))-len(c.missing(ids(before), n)), n)
	e.h.Restart(t)
	t.Log("broker restarted")
	openGate.Do(func() { close(gate) })

	// Publish after the restart. The driver may need a moment to
	// reconnect; a retryable error is retried until the timeout.
	after := numbered(n, "after")
	deadline := time.Now().Add(e.timeout)
	for i := 0; i < n; {
		err := e.tryPublish(pub, e.topic, after[i:min(i+10, n)]...)
		switch {
		case err == nil:
			i += 10
		case !mq.IsRetryable(err) || time.Now().After(deadline):
			t.Fatalf("Publish after the restart: %v (retryable: %v)", err, mq.IsRetryable(err))
		default:
			t.Logf("Publish after the restart: %v; retrying", err)
			select {
			case <-time.After(100 * time.Millisecond): // back off before retrying
			case <-ctx.Done():
			}
		}
	}
	all := append(ids(before), ids(after)...)
	// Reconnecting consumers and rebalancing groups take longer than a
	// single delivery: allow twice the timeout.
	e.awaitAckedFor(t, 2*e.timeout, c, "published before and after the restart", all)
}
