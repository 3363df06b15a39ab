package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func TestRoundTrip(t *testing.T) {
	b := open(t, "")
	topic := uniqueName(t, "rt")
	group := uniqueName(t, "g")
	ctx := ctxFor(t, 60*time.Second)
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	const n = 50
	start := time.Now()
	for i := range n {
		m := mq.NewMessage([]byte(fmt.Sprintf("m%d", i)))
		m.Key = fmt.Sprintf("k%d", i%5)
		m.Header["h"] = "v"
		if err := b.Publish(ctx, topic, m); err != nil {
			t.Fatalf("Publish %d: got %v, want nil", i, err)
		}
	}
	t.Logf("%d sequential publishes took %v", n, time.Since(start))
	var mu sync.Mutex
	got := map[string]int{}
	done := make(chan struct{})
	stop := subscribe(t, b, topic, func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[string(m.Body)]++
		if len(got) == n {
			select {
			case <-done:
			default:
				close(done)
			}
		}
		return nil
	}, mq.Group(group), mq.Concurrency(4))
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("got %d distinct messages, want %d", len(got), n)
	}
	t.Logf("consumed after %v", time.Since(start))
	if err := stop(); err != context.Canceled {
		t.Errorf("Subscribe: got %v, want context.Canceled", err)
	}
}
