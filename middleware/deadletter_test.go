package middleware_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
	"github.com/seedmq/mq/middleware"
)

func TestDeadLetterTopic(t *testing.T) {
	tests := []struct{ topic, want string }{
		{"orders", "orders-dlq"},
		{"billing.events", "billing.events-dlq"},
		{"orders.fifo", "orders-dlq.fifo"},
	}
	for _, tt := range tests {
		if got := middleware.DeadLetterTopic(tt.topic); got != tt.want {
			t.Errorf("DeadLetterTopic(%q): got %q, want %q", tt.topic, got, tt.want)
		}
	}
}

func TestDeadLetterAfterMaxAttempts(t *testing.T) {
	b := newBroker(t)
	topic := topicFor(t)
	now := time.Date(2026, 11, 26, 20, 0, 0, 123, time.UTC)
	src, dlq := newInbox(), newInbox()
	subscribe(t, b, middleware.DeadLetterTopic(topic), "dlq-reader", dlq.handler(nil))
	mw := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 3, Now: func() time.Time { return now }})
	subscribe(t, b, topic, "workers", mw(src.handler(func(context.Context, *mq.Message) error { return errBoom })), fast)

	orig := &mq.Message{Key: "k", Body: []byte("body\x00"), Header: map[string]string{"h": "v"}}
	publish(t, b, topic, orig)

	got := dlq.waitFor(t, 1)[0]
	if n := src.len(); n != 3 {
		t.Errorf("got %d source deliveries, want 3 (MaxAttempts)", n)
	}
	if got.ID != orig.ID || got.Key != "k" || string(got.Body) != "body\x00" {
		t.Errorf("got dead letter ID %q Key %q Body %q, want %q, k, body\\x00", got.ID, got.Key, got.Body, orig.ID)
	}
	want := map[string]string{
		"h":                       "v",
		middleware.HeaderTopic:    topic,
		middleware.HeaderGroup:    "workers",
		middleware.HeaderAttempts: "3",
		middleware.HeaderError:    "boom",
		middleware.HeaderReason:   middleware.ReasonMaxAttempts,
		middleware.HeaderTime:     "2026-11-26T20:00:00.000000123Z",
	}
	for k, v := range want {
		if got.Header[k] != v {
			t.Errorf("header %q: got %q, want %q", k, got.Header[k], v)
		}
	}
	// The original was acknowledged: no fourth delivery.
	publish(t, b, topic, mq.NewMessage([]byte("marker")))
	src.waitFor(t, 4)
	if n := src.len(); n != 4 {
		t.Errorf("got %d source deliveries after a marker message, want 4", n)
	}
}

func TestDeadLetterPermanent(t *testing.T) {
	b := newBroker(t)
	topic := topicFor(t)
	src, dlq := newInbox(), newInbox()
	subscribe(t, b, "custom-dead", "g", dlq.handler(nil))
	mw := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, Topic: func(string) string { return "custom-dead" }})
	subscribe(t, b, topic, "g", mw(src.handler(func(context.Context, *mq.Message) error {
		return mq.Permanent(errors.New("bad input"))
	})))
	publish(t, b, topic, mq.NewMessage([]byte("x")))
	got := dlq.waitFor(t, 1)[0]
	if got.Header[middleware.HeaderReason] != middleware.ReasonPermanent || got.Header[middleware.HeaderAttempts] != "1" {
		t.Errorf("got reason %q attempts %q, want %q and 1", got.Header[middleware.HeaderReason], got.Header[middleware.HeaderAttempts], middleware.ReasonPermanent)
	}
	if e := got.Header[middleware.HeaderError]; e != "permanent: bad input" {
		t.Errorf("got error header %q, want %q", e, "permanent: bad input")
	}
	if n := src.len(); n != 1 {
		t.Errorf("got %d source deliveries, want 1", n)
	}
}

func TestDeadLetterPublishFailureLosesNothing(t *testing.T) {
	b := newBroker(t)
	topic := topicFor(t)
	src, dlq := newInbox(), newInbox()
	subscribe(t, b, middleware.DeadLetterTopic(topic), "g", dlq.handler(nil))
	var (
		mu          sync.Mutex
		handlerErrs []error
	)
	mw := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 2})
	record := func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			err := next(ctx, m)
			mu.Lock()
			handlerErrs = append(handlerErrs, err)
			mu.Unlock()
			return err
		}
	}
	subscribe(t, b, topic, "g", record(mw(src.handler(func(context.Context, *mq.Message) error {
		return mq.Permanent(errBoom)
	}))), fast)
	msg := mq.NewMessage([]byte("precious"))
	publish(t, b, topic, msg)
	// The next two publishes, the dead-letter attempts of deliveries 1
	// and 2, fail; the third succeeds.
	b.InjectPublishErrors(driver.Retryable(errors.New("broker down")), driver.Retryable(errors.New("broker down")))

	got := dlq.waitFor(t, 1)[0]
	if got.ID != msg.ID || got.Header[middleware.HeaderAttempts] != "3" {
		t.Errorf("got dead letter %q after attempt %q, want %q after attempt 3", got.ID, got.Header[middleware.HeaderAttempts], msg.ID)
	}
	attempts := []int{}
	for _, m := range src.waitFor(t, 3) {
		attempts = append(attempts, m.Attempt)
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("got source attempts %v, want [1 2 3]", attempts)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, err := range handlerErrs[:2] {
		if err == nil || mq.IsPermanent(err) || !strings.Contains(err.Error(), "dead-letter") {
			t.Errorf("run %d: got %v, want a non-permanent dead-letter publish error (so the message is redelivered)", i+1, err)
		}
	}
}

func TestDeadLetterErrorBounded(t *testing.T) {
	b := newBroker(t)
	topic := topicFor(t)
	dlq := newInbox()
	subscribe(t, b, middleware.DeadLetterTopic(topic), "g", dlq.handler(nil))
	long := strings.Repeat("é", 100) + "\xff"
	mw := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxErrorBytes: 21})
	subscribe(t, b, topic, "g", mw(func(context.Context, *mq.Message) error { return mq.Permanent(errors.New(long)) }))
	publish(t, b, topic, mq.NewMessage(nil))
	e := dlq.waitFor(t, 1)[0].Header[middleware.HeaderError]
	if len(e) > 21 || !utf8.ValidString(e) || !strings.HasSuffix(e, "...") || !strings.HasPrefix(e, "permanent: é") {
		t.Errorf("got error header %q (%d bytes), want valid UTF-8 of at most 21 bytes ending in ...", e, len(e))
	}
}

func TestDeadLetterNeedsPublisher(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("DeadLetter without a Publisher: got no panic, want one")
		}
	}()
	middleware.DeadLetter(middleware.DeadLetterOptions{})
}

func TestRedrive(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t)
	topic := topicFor(t)
	dlqTopic := middleware.DeadLetterTopic(topic)
	if err := mq.Provision(ctx, b, dlqTopic, "redrive"); err != nil {
		t.Fatal(err)
	}
	src := newInbox()
	var fail atomic.Bool
	fail.Store(true)
	stack := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b})
	subscribe(t, b, topic, "g", stack(src.handler(func(context.Context, *mq.Message) error {
		if fail.Load() {
			return mq.Permanent(errBoom)
		}
		return nil
	})))
	msgs := []*mq.Message{
		{Key: "a", Body: []byte("one"), Header: map[string]string{"keep": "1"}},
		{Key: "b", Body: []byte("two"), Header: map[string]string{"keep": "2"}},
	}
	publish(t, b, topic, msgs...)
	src.waitFor(t, 2)
	waitDepth(t, b, dlqTopic, "redrive", 2)
	fail.Store(false)

	t.Run("filtered", func(t *testing.T) {
		n, err := middleware.Redrive(ctx, b, dlqTopic, middleware.RedriveOptions{
			Group:  "redrive",
			Filter: func(m *mq.Message) bool { return m.Key == "b" },
			Idle:   200 * time.Millisecond,
		})
		if n != 1 || err != nil {
			t.Fatalf("Redrive: got %d, %v; want 1, nil", n, err)
		}
		got := src.waitFor(t, 3)[2]
		if got.ID == msgs[1].ID || got.Attempt != 1 || string(got.Body) != "two" || got.Key != "b" {
			t.Errorf("got redriven ID %q attempt %d body %q key %q, want a new ID, attempt 1, two, b", got.ID, got.Attempt, got.Body, got.Key)
		}
		if want := map[string]string{"keep": "2", middleware.HeaderOriginalID: msgs[1].ID}; !mapsEqual(got.Header, want) {
			t.Errorf("got headers %v, want the original ones and the original ID %v", got.Header, want)
		}
	})
	t.Run("the rest, keeping IDs", func(t *testing.T) {
		n, err := middleware.Redrive(ctx, b, dlqTopic, middleware.RedriveOptions{Group: "redrive", Idle: 2 * time.Second, Limit: 5, KeepID: true})
		if n != 1 || err != nil {
			t.Fatalf("Redrive: got %d, %v; want 1, nil", n, err)
		}
		got := src.waitFor(t, 4)[3]
		if want := map[string]string{"keep": "1"}; got.ID != msgs[0].ID || !mapsEqual(got.Header, want) {
			t.Errorf("got redriven %q %v, want %q with headers %v", got.ID, got.Header, msgs[0].ID, want)
		}
	})
	t.Run("ctx ends the run", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		n, err := middleware.Redrive(ctx, b, dlqTopic, middleware.RedriveOptions{Group: "redrive", Idle: time.Hour})
		if n != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %d, %v; want 0, context.DeadlineExceeded", n, err)
		}
	})
}

// waitDepth waits until group of topic holds n messages.
func waitDepth(t *testing.T, b interface {
	Depth(string, string) (int, error)
}, topic, group string, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		d, err := b.Depth(topic, group)
		if err == nil && d == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Depth(%q, %q): got %d, %v after %v, want %d", topic, group, d, err, wait, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestDeadLetterNotOnShutdown(t *testing.T) {
	// A run that failed because the subscription is stopping is not the
	// message's fault: it is redelivered, not dead-lettered.
	b := newBroker(t)
	topic := topicFor(t)
	if err := b.Provision(context.Background(), middleware.DeadLetterTopic(topic), "g"); err != nil {
		t.Fatal(err)
	}
	mw := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := mw(func(ctx context.Context, m *mq.Message) error { return ctx.Err() })(ctx, &mq.Message{ID: "x", Topic: topic, Attempt: 1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d, err := b.Depth(middleware.DeadLetterTopic(topic), "g"); err != nil || d != 0 {
		t.Errorf("dead-letter topic depth: got %d, %v; want 0, nil", d, err)
	}
}
