package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/rabbitmq"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// killer dials TCP connections for amqp091-go and can cut them all, as a
// network failure would.
type killer struct {
	mu      sync.Mutex
	conns   []net.Conn
	dials   int
	refuse  bool // fail dials, as an unreachable broker would
	refused int
}

func (k *killer) dial(network, addr string) (net.Conn, error) {
	k.mu.Lock()
	refuse := k.refuse
	if refuse {
		k.refused++
	}
	k.mu.Unlock()
	if refuse {
		return nil, errors.New("killer: broker unreachable (test)")
	}
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		c.Close()
		return nil, err
	}
	k.mu.Lock()
	k.conns = append(k.conns, c)
	k.dials++
	k.mu.Unlock()
	return c, nil
}

// kill closes every connection dialed so far and returns how many.
func (k *killer) kill() int {
	k.mu.Lock()
	conns := k.conns
	k.conns = nil
	k.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// setRefuse makes later dials fail (true) or succeed (false).
func (k *killer) setRefuse(v bool) {
	k.mu.Lock()
	k.refuse = v
	k.mu.Unlock()
}

func (k *killer) dialCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dials
}

// TestReconnect cuts the driver's TCP connections three times while
// messages are published and consumed: every Publish must succeed (it
// waits for the reconnection) and every published message must arrive.
func TestReconnect(t *testing.T) {
	// Registered first, so it runs after the broker's Close: every
	// goroutine the reconnections started must have ended.
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	k := &killer{}
	ctx := context.Background()
	octx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	b, err := rabbitmq.New(octx, rabbitmq.Options{
		URL:          rabbitmqtest.URL(t),
		Config:       amqp.Config{Dial: k.dial},
		QueueExpires: 10 * time.Minute,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	topic := uniqueTopic(t)
	if err := b.Provision(octx, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}

	var mu sync.Mutex
	seen := map[string]bool{}
	progress := make(chan struct{}, 1)
	subscribe(t, b, topic, func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		seen[m.ID] = true
		mu.Unlock()
		select {
		case progress <- struct{}{}:
		default:
		}
		return nil
	}, mq.Group("g"), mq.Concurrency(4))

	const publishers, each = 4, 100
	ids := make(chan string, publishers*each)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				m := mq.NewMessage(fmt.Appendf(nil, "p%d-%d", p, i))
				pctx, cancel := context.WithTimeout(ctx, waitFor)
				err := b.Publish(pctx, topic, m)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("Publish %d of publisher %d: %w", i, p, err)
					return
				}
				ids <- m.ID
			}
		})
	}

	// Cut the connections whenever consumption has made progress since
	// the last cut, three times.
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	for cut, last := 0, -1; cut < 3; {
		select {
		case <-progress:
		case <-time.After(waitFor):
			t.Fatalf("no delivery within %v after %d cuts", waitFor, cut)
		}
		if n := received(); n > last && n < publishers*each {
			if k.kill() > 0 {
				cut++
				last = n + 20
			}
		}
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(waitFor)
	for {
		mu.Lock()
		missing := 0
		for id := range want {
			if !seen[id] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d confirmed messages never arrived after reconnecting", missing, len(want))
		}
		select {
		case <-progress:
		case <-time.After(time.Second):
		}
	}
	if len(want) != publishers*each {
		t.Errorf("got %d confirmed publishes, want %d", len(want), publishers*each)
	}
	if d := k.dialCount(); d < 4 {
		t.Errorf("got %d dials, want at least 4 (reconnections after the cuts)", d)
	}
}

// TestAttemptAfterConnectionLoss checks that Attempt counts a delivery
// whose connection was lost before it was settled, and then one that the
// handler failed: 1, then 2 (broker redelivery), then 3 (driver
// redelivery through a delay queue).
func TestAttemptAfterConnectionLoss(t *testing.T) {
	for _, qt := range []string{rabbitmq.QueueQuorum, rabbitmq.QueueClassic} {
		t.Run(qt, func(t *testing.T) {
			k := &killer{}
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			b, err := rabbitmq.New(ctx, rabbitmq.Options{
				URL:          rabbitmqtest.URL(t),
				Config:       amqp.Config{Dial: k.dial},
				QueueType:    qt,
				QueueExpires: 10 * time.Minute,
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				if err := b.Close(ctx); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			topic := uniqueTopic(t)
			if err := b.Provision(ctx, topic, "g"); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			c := newCollector()
			cut := make(chan struct{})
			subscribe(t, b, topic, func(hctx context.Context, m *mq.Message) error {
				c.add(m)
				switch m.Attempt {
				case 1:
					// Hold the message until its connection is gone.
					select {
					case <-cut:
					case <-time.After(waitFor):
					}
					return errors.New("connection lost while handling")
				case 2:
					return errors.New("fail once more")
				}
				return nil
			}, mq.Group("g"), mq.Backoff(func(int) time.Duration { return 50 * time.Millisecond }))
			if err := b.Publish(ctx, topic, mq.NewMessage([]byte("x"))); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			c.wait(t, 1)
			if k.kill() == 0 {
				t.Fatal("no connection to cut")
			}
			close(cut)
			got := c.wait(t, 3)
			for i, m := range got {
				if m.Attempt != i+1 {
					t.Errorf("delivery %d: got Attempt %d, want %d", i+1, m.Attempt, i+1)
				}
			}
		})
	}
}

// TestPublishDuringOutage cuts the connection and keeps the broker
// unreachable: Publish must wait, fail with the ctx's error (naming the
// connection failure) when its ctx ends, and succeed once the broker is
// reachable again; the subscriber resumes and receives the message.
func TestPublishDuringOutage(t *testing.T) {
	k := &killer{}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := rabbitmq.New(ctx, rabbitmq.Options{
		URL:          rabbitmqtest.URL(t),
		Config:       amqp.Config{Dial: k.dial},
		QueueExpires: 10 * time.Minute,
		ReconnectMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		k.setRefuse(false)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	topic := uniqueTopic(t)
	if err := b.Provision(ctx, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	c := newCollector()
	subscribe(t, b, topic, c.handler, mq.Group("g"))
	if err := b.Publish(ctx, topic, mq.NewMessage([]byte("before"))); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c.wait(t, 1)

	k.setRefuse(true)
	k.kill()
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	start := time.Now()
	err = b.Publish(short, topic, mq.NewMessage([]byte("lost?")))
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish while the broker is unreachable: got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Publish took %v to honour a 500ms ctx", d)
	}
	t.Logf("error: %v", err)
	pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := b.Ping(pctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping while the broker is unreachable: got %v, want context.DeadlineExceeded", err)
	}
	pcancel()

	// A Publish started during the outage completes after it.
	done := make(chan error, 1)
	m := mq.NewMessage([]byte("after"))
	go func() { done <- b.Publish(ctx, topic, m) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v during the outage, want it to wait", err)
	case <-time.After(300 * time.Millisecond): // it must still be waiting; nothing to observe but time
	}
	k.setRefuse(false)
	if err := <-done; err != nil {
		t.Fatalf("Publish across the outage: got %v, want nil", err)
	}
	got := c.wait(t, 2)
	ids := map[string]bool{}
	for _, g := range c.wait(t, c.count()) {
		ids[g.ID] = true
	}
	if !ids[m.ID] {
		t.Errorf("the message published across the outage was not delivered; got %d messages", len(got))
	}
}

// TestCloseDuringOutage closes the broker, with a short ctx, while a
// Publish without deadline waits for an unreachable broker: Close returns
// the ctx's error, the Publish returns ErrClosed, and no goroutine is left.
func TestCloseDuringOutage(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	k := &killer{}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := rabbitmq.New(ctx, rabbitmq.Options{
		URL:          rabbitmqtest.URL(t),
		Config:       amqp.Config{Dial: k.dial},
		QueueExpires: 10 * time.Minute,
		ReconnectMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	topic := uniqueTopic(t)
	if err := b.Provision(ctx, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	k.setRefuse(true)
	k.kill()
	published := make(chan error, 1)
	go func() { published <- b.Publish(context.Background(), topic, mq.NewMessage([]byte("x"))) }()
	// The Publish waits once it has made the driver dial (and fail).
	for deadline := time.Now().Add(waitFor); ; {
		k.mu.Lock()
		refused := k.refused
		k.mu.Unlock()
		if refused > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Publish did not try to reconnect within %v", waitFor)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter the dialer bumps
	}

	cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ccancel()
	if err := b.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close while a Publish waits: got %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-published:
		if !errors.Is(err, mq.ErrClosed) {
			t.Errorf("the waiting Publish: got %v, want ErrClosed", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("the waiting Publish did not return within %v of Close", waitFor)
	}
	goleak.VerifyNone(t, leaks)
}
