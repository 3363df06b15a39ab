package rabbitmq_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// states records what mq.WatchState reports.
type states struct {
	mu  sync.Mutex
	got []mq.SubscriptionState
}

func (s *states) add(st mq.SubscriptionState) {
	s.mu.Lock()
	s.got = append(s.got, st)
	s.mu.Unlock()
}

func (s *states) list() []mq.SubscriptionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// await waits up to waitFor for a report after the first skip ones for
// which ok holds, and returns its index.
func (s *states) await(t *testing.T, skip int, what string, ok func(mq.SubscriptionState) bool) int {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for i, st := range s.list() {
			if i >= skip && ok(st) {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no report %s after report %d within %v; got %+v", what, skip, waitFor, s.list())
	return 0
}

// TestSubscriptionState checks that a subscription reports itself
// connected, not connected when its connection breaks, connected again
// once it has reconnected, and stopped when Subscribe returns.
func TestSubscriptionState(t *testing.T) {
	u, proxy := proxied(t, rabbitmqtest.URL(t))
	b, err := mq.Open(context.Background(), withQuery(t, u, "reconnect_max=200ms"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close(context.Background())
	topic := uniqueTopic(t)
	var st states
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, topic, func(context.Context, *mq.Message) error { return nil }, mq.Group("g"), mq.WatchState(st.add))
	}()
	defer func() {
		cancel()
		<-done
	}()
	up := func(s mq.SubscriptionState) bool { return s.Connected && s.Assigned == -1 }
	down := func(s mq.SubscriptionState) bool { return !s.Connected && !s.Stopped }
	i := st.await(t, 0, "connected", up)
	proxy.Reset()
	i = st.await(t, i+1, "not connected after the connection broke", down)
	i = st.await(t, i+1, "connected again", up)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Subscribe: got %v, want context.Canceled", err)
	}
	done <- nil
	got := st.list()
	if last := got[len(got)-1]; last.Connected || !last.Stopped {
		t.Errorf("last report: got %+v, want not connected, stopped", last)
	}
}
