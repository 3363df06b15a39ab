package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// env is what a case works with: the harness, the broker's capabilities,
// a topic and group of its own, and helpers that bound every wait.
type env struct {
	h     Harness
	caps  mq.Capabilities
	topic string // the case's own topic
	group string // the case's main group

	base   string // topic name without the suffix counter
	suffix string // random, shared by every name of the case
	names  atomic.Int32

	// timeout bounds each wait for something expected; grace is how long
	// to watch for something that must not happen.
	timeout time.Duration
	grace   time.Duration

	mu   sync.Mutex
	subs []*subscription
}

// maxNameLen keeps generated names valid on every broker (SQS allows 80).
const maxNameLen = 60

func newEnv(t *testing.T, h Harness, caps mq.Capabilities, caseName string) *env {
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	short := caseName
	// "mqc-" + short + "-" + suffix + "-" + up to 3 digits fits maxNameLen.
	if room := maxNameLen - len("mqc-") - 1 - len(suffix) - 4; len(short) > room {
		short = strings.TrimRight(short[:room], "-")
	}
	e := &env{
		h:       h,
		caps:    caps,
		base:    "mqc-" + short + "-" + suffix,
		suffix:  suffix,
		timeout: h.Timeout,
		grace:   h.Grace,
	}
	e.topic = e.base
	e.group = e.newGroup()
	t.Logf("topic %s, group %s", e.topic, e.group)
	return e
}

// newTopic returns another unique topic name for the case.
func (e *env) newTopic() string {
	return e.base + "-" + strconv.Itoa(int(e.names.Add(1)))
}

// newGroup returns a unique group name. Brokers without fan-out are only
// ever given one group per topic.
func (e *env) newGroup() string {
	return "mqc-g" + strconv.Itoa(int(e.names.Add(1))) + "-" + e.suffix
}

// ctx returns a context bounded by the case timeout.
func (e *env) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	t.Cleanup(cancel)
	return ctx
}

// open opens a new connection with Harness.Open and closes it when the
// case ends, failing the case if Close fails.
func (e *env) open(t *testing.T) mq.Broker {
	t.Helper()
	return e.openWith(t, "Harness.Open", e.h.Open)
}

func (e *env) openWith(t *testing.T, what string, open func(context.Context) (mq.Broker, error)) mq.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	b, err := open(ctx)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if b == nil {
		t.Fatalf("%s returned a nil broker and no error", what)
	}
	t.Cleanup(func() { e.close(t, b) })
	return b
}

// close closes b within the timeout and checks that it returns nil.
func (e *env) close(t *testing.T, b mq.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
}

// provision creates topic and groups on b.
func (e *env) provision(t *testing.T, b mq.Broker, topic string, groups ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	if err := mq.Provision(ctx, b, topic, groups...); err != nil {
		t.Fatalf("Provision(%q, %q): %v", topic, groups, err)
	}
}

// publish publishes msgs to topic in one call and fails the case unless
// Publish returns nil.
func (e *env) publish(t *testing.T, b mq.Publisher, topic string, msgs ...*mq.Message) {
	t.Helper()
	if err := e.tryPublish(b, topic, msgs...); err != nil {
		t.Fatalf("Publish(%q, %d messages): got %v, want nil", topic, len(msgs), err)
	}
}

// tryPublish publishes within the case timeout and returns Publish's
// error. Safe to call from any goroutine.
func (e *env) tryPublish(b mq.Publisher, topic string, msgs ...*mq.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	return b.Publish(ctx, topic, msgs...)
}

// numbered returns n messages tagged tag. Message i has Key "key-i",
// Body "tag-i" and the headers seq=i and tag=tag; its ID is empty, so
// Publish fills it.
func numbered(n int, tag string) []*mq.Message {
	msgs := make([]*mq.Message, n)
	for i := range msgs {
		msgs[i] = &mq.Message{
			Key:    "key-" + strconv.Itoa(i),
			Body:   []byte(tag + "-" + strconv.Itoa(i)),
			Header: map[string]string{"seq": strconv.Itoa(i), "tag": tag},
		}
	}
	return msgs
}

// ids returns the IDs of msgs, which Publish has filled.
func ids(msgs []*mq.Message) []string {
	s := make([]string, len(msgs))
	for i, m := range msgs {
		s[i] = m.ID
	}
	return s
}

// seq returns a delivered message's seq header as a number, or -1.
func seq(m *mq.Message) int {
	n, err := strconv.Atoi(m.Header["seq"])
	if err != nil {
		return -1
	}
	return n
}

// constantBackoff redelivers after d on every attempt.
func constantBackoff(d time.Duration) mq.SubscribeOption {
	return mq.Backoff(func(int) time.Duration { return d })
}

// subscription is a Subscribe call running in a goroutine.
type subscription struct {
	what   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Subscribe's result, once done is closed
	ending atomic.Bool
}

// subscribe runs b.Subscribe(ctx, topic, h, opts...) in a goroutine until
// the case stops it or ends. A Subscribe that returns on its own while
// the case waits for deliveries fails the case, unless the case has said
// it expects that (expectEnd).
func (e *env) subscribe(t *testing.T, b mq.Subscriber, topic string, h mq.Handler, opts ...mq.SubscribeOption) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{what: "Subscribe(" + topic + ")", cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = b.Subscribe(ctx, topic, h, opts...)
	}()
	e.mu.Lock()
	e.subs = append(e.subs, s)
	e.mu.Unlock()
	t.Cleanup(func() {
		s.ending.Store(true)
		cancel()
		select {
		case <-s.done:
		case <-time.After(e.timeout):
			logStacks(t)
			t.Errorf("%s did not return within %v of its ctx being canceled", s.what, e.timeout)
		}
	})
	return s
}

// sub subscribes h to the case topic with the case group, then opts.
func (e *env) sub(t *testing.T, b mq.Subscriber, h mq.Handler, opts ...mq.SubscribeOption) *subscription {
	t.Helper()
	return e.subscribe(t, b, e.topic, h, append([]mq.SubscribeOption{mq.Group(e.group)}, opts...)...)
}

// expectEnd says the case is about to end s (by canceling it, closing its
// broker or expecting an error), so its return is not a failure.
func (s *subscription) expectEnd() { s.ending.Store(true) }

// ended reports whether Subscribe has returned.
func (s *subscription) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// wait waits up to e.timeout for Subscribe to return and returns its error.
func (e *env) wait(t *testing.T, s *subscription) error {
	t.Helper()
	s.expectEnd()
	select {
	case <-s.done:
		return s.err
	case <-time.After(e.timeout):
		logStacks(t)
		t.Fatalf("%s did not return within %v", s.what, e.timeout)
		return nil
	}
}

// stop cancels s's ctx and checks that Subscribe returns context.Canceled
// within the timeout.
func (e *env) stop(t *testing.T, s *subscription) {
	t.Helper()
	s.expectEnd()
	s.cancel()
	if err := e.wait(t, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("%s after its ctx was canceled: got %v, want context.Canceled", s.what, err)
	}
}

// checkSubs fails the case if a subscription returned on its own.
func (e *env) checkSubs(t *testing.T, what string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.subs {
		if !s.ending.Load() && s.ended() {
			t.Fatalf("%s returned %v while the case waited for %s; it must block until its ctx ends or the broker closes", s.what, s.err, what)
		}
	}
}

// pollEvery is how often waits re-check conditions that have no
// notification, such as a subscription ending.
const pollEvery = 20 * time.Millisecond

// await waits until cond holds, re-checking whenever c records something,
// and fails the case with what and c's summary after e.timeout.
func (e *env) await(t *testing.T, c *collector, what string, cond func() bool) {
	t.Helper()
	e.awaitFor(t, e.timeout, c, what, cond)
}

// awaitAcked waits until every id has been acknowledged at least once,
// and names some of those missing if it times out.
func (e *env) awaitAcked(t *testing.T, c *collector, what string, ids []string) {
	t.Helper()
	e.awaitAckedFor(t, e.timeout, c, what, ids)
}

// awaitAckedFor is awaitAcked with its own bound d.
func (e *env) awaitAckedFor(t *testing.T, d time.Duration, c *collector, what string, ids []string) {
	t.Helper()
	desc := fmt.Sprintf("%d messages (%s) to be acknowledged", len(ids), what)
	e.awaitFor(t, d, c, desc, func() bool {
		return c.ackedAll(ids)
	}, func() string { return fmt.Sprintf("; not yet acknowledged: %q", c.missing(ids, 5)) })
}

// awaitFor waits up to d until cond holds, re-checking on every change
// of c (c may be nil) and every pollEvery, and fails the case early if a
// subscription returned on its own. detail adds to the failure message.
func (e *env) awaitFor(t *testing.T, d time.Duration, c *collector, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		var changed <-chan struct{}
		if c != nil {
			changed = c.changes()
		}
		if cond() {
			return
		}
		e.checkSubs(t, what)
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			sum := ""
			if c != nil {
				sum = "; " + c.summary()
			}
			for _, f := range detail {
				sum += f()
			}
			t.Fatalf("timed out after %v waiting for %s%s", d, what, sum)
		}
	}
}

// never watches for e.grace and fails the case if bad becomes true. Cases
// call it after a positive signal (a later message arrived, a handler
// returned) to show that something that must not happen (a redelivery, a
// handler over the limit) does not: a correct broker would have done it
// by then if it were going to, and a bounded wait is the only way to
// observe an absence.
func (e *env) never(t *testing.T, c *collector, what string, bad func() bool) {
	t.Helper()
	deadline := time.NewTimer(e.grace)
	defer deadline.Stop()
	for {
		changed := c.changes()
		if bad() {
			t.Fatalf("%s; %s", what, c.summary())
		}
		select {
		case <-changed:
		case <-deadline.C:
			if bad() {
				t.Fatalf("%s; %s", what, c.summary())
			}
			return
		}
	}
}

// eventually polls cond until it holds, failing after e.timeout. For
// conditions with no notification.
func (e *env) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	e.awaitFor(t, e.timeout, nil, what, cond)
}
