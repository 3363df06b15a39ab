package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

// run subscribes h in the background and returns a stop func that cancels
// the subscription and checks Subscribe returned context.Canceled.
func run(t *testing.T, b mq.Broker, topic string, h mq.Handler, opts ...mq.SubscribeOption) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, topic, h, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Subscribe returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Subscribe did not return within 5s of cancel")
		}
	})
}

// newBroker returns memory.New(opts), failing t if New fails.
func newBroker(t testing.TB, opts memory.Options) *memory.Broker {
	t.Helper()
	b, err := memory.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return b
}

func wait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"mem://", nil},
		{"mem://shared?group=g&provision=false&max_headers=10&ack_deadline=2s&max_message_bytes=1024", nil},
		{"mem://x?grop=g", mq.ErrInvalidURL},
		{"mem://x?max_headers=-1", mq.ErrInvalidURL},
		{"mem://x?ack_deadline=soon", mq.ErrInvalidURL},
		{"mem://x?max_message_bytes=0", mq.ErrInvalidURL},
		{"mem://x?group=a%20b", mq.ErrInvalidOption},
		{"mem://x?retain=100", nil},
		{"mem://x?retain=-1", mq.ErrInvalidURL},
		{"mem://x?provision=maybe", mq.ErrInvalidURL},
		{"mem://x:99", mq.ErrInvalidURL},
	} {
		t.Run(tc.url, func(t *testing.T) {
			b, err := mq.Open(ctx, tc.url)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open(%q) error = %v, want %v", tc.url, err, tc.want)
			}
			if b != nil {
				b.Close(ctx)
			}
		})
	}
}

func TestUnknownParameterNamesIt(t *testing.T) {
	_, err := mq.Open(context.Background(), "mem://x?grop=g")
	if err == nil || !strings.Contains(err.Error(), `"grop"`) || !strings.Contains(err.Error(), "group") {
		t.Fatalf("error = %v; want it to name the unknown parameter and list the known ones", err)
	}
}

// The URL's parameters are snake_case; an old camelCase spelling is an
// error that names the new one.
func TestRenamedParameterNamesNewSpelling(t *testing.T) {
	for old, name := range map[string]string{
		"maxMessageBytes": "max_message_bytes",
		"maxHeaders":      "max_headers",
		"ackDeadline":     "ack_deadline",
	} {
		t.Run(old, func(t *testing.T) {
			u := "mem://x?" + old + "=1"
			b, err := mq.Open(context.Background(), u)
			if b != nil {
				b.Close(context.Background())
			}
			if !errors.Is(err, mq.ErrInvalidURL) || !strings.Contains(err.Error(), `"`+name+`"`) {
				t.Fatalf("Open(%q) error = %v; want mq.ErrInvalidURL naming %q", u, err, name)
			}
		})
	}
}

// The URL's parameters set the Options they are named after.
func TestURLSetsOptions(t *testing.T) {
	ctx := context.Background()
	b, err := mq.Open(ctx, "mem://?max_message_bytes=2048&max_headers=3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(ctx) })
	if c := b.Capabilities(); c.MaxMessageBytes != 2048 || c.MaxHeaders != 3 {
		t.Fatalf("MaxMessageBytes, MaxHeaders = %d, %d; want 2048, 3", c.MaxMessageBytes, c.MaxHeaders)
	}
}

// The key and header limits set by the URL are in Capabilities and
// refuse a message over them before anything is stored (issue 20).
func TestURLSetsKeyAndHeaderLimits(t *testing.T) {
	ctx := context.Background()
	b, err := mq.Open(ctx, "mem://?max_key_bytes=255&max_header_key_bytes=16&max_header_bytes=64")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(ctx) })
	c := b.Capabilities()
	if c.MaxKeyBytes != 255 || c.MaxHeaderKeyBytes != 16 || c.MaxHeaderBytes != 64 {
		t.Fatalf("MaxKeyBytes, MaxHeaderKeyBytes, MaxHeaderBytes = %d, %d, %d; want 255, 16, 64", c.MaxKeyBytes, c.MaxHeaderKeyBytes, c.MaxHeaderBytes)
	}
	for name, m := range map[string]*mq.Message{
		"key":        {Key: strings.Repeat("k", 256)},
		"header key": {Header: map[string]string{strings.Repeat("h", 17): ""}},
		"headers":    {Header: map[string]string{"h": strings.Repeat("v", 64)}},
	} {
		if err := b.Publish(ctx, "limits", m); !errors.Is(err, mq.ErrInvalidMessage) {
			t.Errorf("Publish with a %s over its limit: got %v, want mq.ErrInvalidMessage", name, err)
		}
	}
	if err := b.Publish(ctx, "limits", &mq.Message{Key: strings.Repeat("k", 255), Header: map[string]string{strings.Repeat("h", 16): strings.Repeat("v", 48)}}); err != nil {
		t.Errorf("Publish at every limit: got %v, want nil", err)
	}
}

// New rejects invalid options instead of replacing them.
func TestNewRejectsInvalidOptions(t *testing.T) {
	for name, opts := range map[string]memory.Options{
		"MaxMessageBytes": {MaxMessageBytes: -1},
		"MaxHeaders":      {MaxHeaders: -1},
		"MaxKeyBytes":     {MaxKeyBytes: -1},
		"MaxHeaderBytes":  {MaxHeaderBytes: -1},
		"AckDeadline":     {AckDeadline: -time.Second},
		"Retain":          {Retain: -1},
		"Group":           {Group: "a b"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := memory.New(context.Background(), opts)
			if !errors.Is(err, mq.ErrInvalidOption) || b != nil {
				t.Fatalf("New(%+v) = %v, %v; want nil, mq.ErrInvalidOption", opts, b, err)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
		})
	}
	b := newBroker(t, memory.Options{})
	defer b.Close(context.Background())
	if got := b.Capabilities().MaxMessageBytes; got != memory.DefaultMaxMessageBytes {
		t.Fatalf("zero Options: MaxMessageBytes = %d, want %d", got, memory.DefaultMaxMessageBytes)
	}
}

// A failing message of one key holds back that key's later messages, but
// not other keys', and the key's order survives redelivery.
func TestKeyOrderSurvivesRedelivery(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{})
	t.Cleanup(func() { b.Close(ctx) })
	if err := b.Provision(ctx, "t", "g"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for _, k := range []string{"a", "b"} {
			if err := b.Publish(ctx, "t", &mq.Message{Key: k, Body: fmt.Appendf(nil, "%s%d", k, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	var got []string
	failed := false
	run(t, b, "t", func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if string(m.Body) == "a1" && !failed {
			failed = true
			return errors.New("fail once")
		}
		got = append(got, fmt.Sprintf("%s@%d", m.Body, m.Attempt))
		return nil
	}, mq.Group("g"), mq.Concurrency(4), mq.Backoff(mq.ExponentialBackoff(20*time.Millisecond, time.Second)))
	wait(t, "10 acks", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 10 })
	var a []string
	for _, s := range got {
		if s[0] == 'a' {
			a = append(a, s)
		}
	}
	want := []string{"a0@1", "a1@2", "a2@1", "a3@1", "a4@1"}
	if fmt.Sprint(a) != fmt.Sprint(want) {
		t.Fatalf("key a handled as %v, want %v", a, want)
	}
}

// With an ack deadline, a slow handler's message goes to another consumer
// and the late acknowledgement is discarded.
func TestAckDeadlineRedelivers(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{AckDeadline: 50 * time.Millisecond})
	t.Cleanup(func() { b.Close(ctx) })
	if err := b.Provision(ctx, "t", "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "t", mq.NewMessage([]byte("slow"))); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	attempts := make(chan int, 4)
	run(t, b, "t", func(ctx context.Context, m *mq.Message) error {
		attempts <- m.Attempt
		if m.Attempt == 1 {
			<-release
		}
		return nil
	}, mq.Group("g"), mq.Concurrency(2))
	for want := 1; want <= 2; want++ {
		select {
		case got := <-attempts:
			if got != want {
				t.Fatalf("attempt = %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no delivery with attempt %d", want)
		}
	}
	close(release)
	wait(t, "empty group", func() bool { n, _ := b.Depth("t", "g"); return n == 0 })
}

// Disconnect puts unacknowledged messages back and loses their acks.
func TestDisconnectRedelivers(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{Name: "disconnect-" + t.Name()})
	t.Cleanup(func() { b.Close(ctx) })
	if err := b.Provision(ctx, "t", "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "t", mq.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []int
	run(t, b, "t", func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		seen = append(seen, m.Attempt)
		mu.Unlock()
		if m.Attempt == 1 {
			close(started)
			<-release
		}
		return nil
	}, mq.Group("g"), mq.Concurrency(2))
	<-started
	b.Disconnect()
	wait(t, "redelivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 2 })
	close(release)
	wait(t, "empty group", func() bool { n, _ := b.Depth("t", "g"); return n == 0 })
	if fmt.Sprint(seen) != "[1 2]" {
		t.Fatalf("attempts seen = %v, want [1 2]", seen)
	}
}

func TestInjectPublishErrors(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{})
	t.Cleanup(func() { b.Close(ctx) })
	boom := errors.New("boom")
	b.InjectPublishErrors(boom)
	if err := b.Publish(ctx, "t", mq.NewMessage(nil)); !errors.Is(err, boom) {
		t.Fatalf("first Publish error = %v, want boom", err)
	}
	if err := b.Publish(ctx, "t", mq.NewMessage(nil)); err != nil {
		t.Fatalf("second Publish error = %v, want nil", err)
	}
}

// A closed broker reports mq.ErrClosed, not a fault still queued, and
// argument errors come before mq.ErrClosed.
func TestPublishAfterCloseIgnoresFaults(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{})
	b.InjectPublishErrors(errors.New("boom"))
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "t", mq.NewMessage(nil)); !errors.Is(err, mq.ErrClosed) {
		t.Fatalf("Publish after Close: got %v, want mq.ErrClosed", err)
	}
	if err := b.Publish(ctx, "", mq.NewMessage(nil)); !errors.Is(err, mq.ErrInvalidTopic) {
		t.Fatalf("Publish to \"\" after Close: got %v, want mq.ErrInvalidTopic", err)
	}
}

func TestDelayedMessageWaits(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{})
	t.Cleanup(func() { b.Close(ctx) })
	b.Provision(ctx, "t", "g")
	start := time.Now()
	if err := b.Publish(ctx, "t", &mq.Message{Body: []byte("later"), Delay: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Duration, 1)
	run(t, b, "t", func(ctx context.Context, m *mq.Message) error { got <- time.Since(start); return nil }, mq.Group("g"))
	select {
	case d := <-got:
		if d < 100*time.Millisecond {
			t.Fatalf("delivered after %v, want at least 100ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("delayed message never delivered")
	}
}

// Messages a subscription took ahead of its handler and never handled go
// back to the group when it stops, without counting as an attempt.
func TestPrefetchedReturnUnhandled(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{})
	t.Cleanup(func() { b.Close(ctx) })
	if err := b.Provision(ctx, "t", "g"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := b.Publish(ctx, "t", &mq.Message{ID: fmt.Sprint(i), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan struct{})
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(sctx, "t", func(ctx context.Context, m *mq.Message) error {
			close(started)
			<-ctx.Done() // holds the first message until the subscription stops
			return ctx.Err()
		}, mq.Group("g"), mq.Concurrency(1))
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe returned %v, want context.Canceled", err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	run(t, b, "t", func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.ID] = m.Attempt
		return nil
	}, mq.Group("g"))
	wait(t, "5 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 5 })
	want := map[string]int{"0": 2, "1": 1, "2": 1, "3": 1, "4": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attempts by ID = %v, want %v", got, want)
	}
}

// A group created later with mq.StartAt(mq.Earliest) replays the whole
// log in publish order, however long it is.
func TestReplayLongLogInOrder(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{})
	t.Cleanup(func() { b.Close(ctx) })
	const n = 2500 // more than one chunk of the log
	for i := range n {
		if err := b.Publish(ctx, "t", &mq.Message{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []string
	run(t, b, "t", func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.ID)
		return nil
	}, mq.Group("late"), mq.StartAt(mq.Earliest))
	wait(t, "replay", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n })
	for i, id := range got {
		if id != fmt.Sprint(i) {
			t.Fatalf("replayed message %d has ID %s, want %d (publish order)", i, id, i)
		}
	}
}

// With Retain, a group created later replays only the newest messages,
// in order, while a group that existed at publish time still receives
// every message: dropping one from the log never takes it from a group.
func TestRetainBoundsReplayNotDelivery(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, memory.Options{Retain: 3})
	t.Cleanup(func() { b.Close(ctx) })
	if err := b.Provision(ctx, "t", "early"); err != nil {
		t.Fatal(err)
	}
	const n = 2500 // the log drops whole chunks as it goes
	for i := range n {
		if err := b.Publish(ctx, "t", &mq.Message{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Each group's handler records IDs until it sees the marker, which is
	// published after both subscriptions started: in publish order it
	// comes after everything the group had, so nothing more can follow.
	got := map[string][]string{}
	var mu sync.Mutex
	for _, group := range []string{"late", "early"} {
		run(t, b, "t", func(ctx context.Context, m *mq.Message) error {
			mu.Lock()
			defer mu.Unlock()
			got[group] = append(got[group], m.ID)
			return nil
		}, mq.Group(group), mq.StartAt(mq.Earliest))
	}
	wait(t, "the late group's replay", func() bool { mu.Lock(); defer mu.Unlock(); return len(got["late"]) >= 3 })
	if err := b.Publish(ctx, "t", &mq.Message{ID: "marker"}); err != nil {
		t.Fatal(err)
	}
	done := func(ids []string) bool { return len(ids) > 0 && ids[len(ids)-1] == "marker" }
	wait(t, "the marker", func() bool { mu.Lock(); defer mu.Unlock(); return done(got["late"]) && done(got["early"]) })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"2497", "2498", "2499", "marker"}; !slices.Equal(got["late"], want) {
		late := got["late"]
		if len(late) > 8 {
			late = append(late[:4:4], "...", fmt.Sprint(len(late), " in all"))
		}
		t.Errorf("late group got %v, want the newest 3 then the marker: %v", late, want)
	}
	if len(got["early"]) != n+1 {
		t.Errorf("early group received %d messages, want all %d and the marker", len(got["early"]), n+1)
	}
}
