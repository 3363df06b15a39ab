package middleware_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

// wait bounds every wait for something expected in these tests.
const wait = 5 * time.Second

// newBroker returns a private memory broker, closed when the test ends.
func newBroker(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(context.Background(), memory.Options{})
	if err != nil {
		t.Fatalf("memory.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: got %v, want nil", err)
		}
	})
	return b
}

// topicFor returns a topic name unique to the test.
func topicFor(t *testing.T) string {
	r := strings.NewReplacer("/", "-", "_", "-", " ", "-", "#", "-")
	return strings.ToLower(r.Replace(t.Name()))
}

// subscribe provisions topic and group, so messages published from now on
// wait for the group, then runs b.Subscribe in a goroutine until the test
// ends, and checks that it then returns context.Canceled.
func subscribe(t *testing.T, b mq.Broker, topic, group string, h mq.Handler, opts ...mq.SubscribeOption) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatalf("Provision(%q, %q): %v", topic, group, err)
	}
	opts = append([]mq.SubscribeOption{mq.Group(group)}, opts...)
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, topic, h, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Subscribe(%q): got %v, want context.Canceled", topic, err)
			}
		case <-time.After(wait):
			t.Errorf("Subscribe(%q) did not return within %v of cancel", topic, wait)
		}
	})
}

// publish publishes msgs and fails the test on error.
func publish(t *testing.T, p mq.Publisher, topic string, msgs ...*mq.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := p.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("Publish(%q): got %v, want nil", topic, err)
	}
}

// inbox records delivered messages and lets a test wait for them.
type inbox struct {
	mu   sync.Mutex
	msgs []*mq.Message
	ch   chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 1)} }

// handler records each delivery, then returns fn's result (nil if fn is nil).
func (in *inbox) handler(fn mq.Handler) mq.Handler {
	return func(ctx context.Context, m *mq.Message) error {
		in.mu.Lock()
		in.msgs = append(in.msgs, m.Clone())
		in.mu.Unlock()
		select {
		case in.ch <- struct{}{}:
		default:
		}
		if fn == nil {
			return nil
		}
		return fn(ctx, m)
	}
}

// waitFor waits until at least n messages arrived and returns a copy.
func (in *inbox) waitFor(t *testing.T, n int) []*mq.Message {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		got := append([]*mq.Message(nil), in.msgs...)
		in.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-in.ch:
		case <-deadline.C:
			t.Fatalf("got %d deliveries after %v, want %d", len(got), wait, n)
		}
	}
}

// len returns the number of deliveries so far.
func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

// fast redelivers failed messages after 1ms.
var fast = mq.Backoff(func(int) time.Duration { return time.Millisecond })

var errBoom = errors.New("boom")

// waitUntil polls cond, for conditions without a notification, failing
// with what() after wait.
func waitUntil(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v: %s", wait, what())
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
