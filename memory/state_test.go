package memory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

// TestSubscriptionState checks the states a memory subscription reports:
// connected once subscribed, not connected and connected again on
// Disconnect, stopped when Subscribe returns.
func TestSubscriptionState(t *testing.T) {
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	var mu sync.Mutex
	var got []mq.SubscriptionState
	list := func() []mq.SubscriptionState {
		mu.Lock()
		defer mu.Unlock()
		return append([]mq.SubscriptionState(nil), got...)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(sctx, "t", func(context.Context, *mq.Message) error { return nil }, mq.Group("g"),
			mq.WatchState(func(st mq.SubscriptionState) {
				mu.Lock()
				got = append(got, st)
				mu.Unlock()
			}))
	}()
	for i := 0; i < 500 && len(list()) == 0; i++ {
		time.Sleep(time.Millisecond)
	}
	b.Disconnect()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Subscribe: got %v, want context.Canceled", err)
	}
	want := []mq.SubscriptionState{
		{Connected: true, Assigned: -1},
		{Connected: false, Assigned: -1},
		{Connected: true, Assigned: -1},
		{Connected: false, Assigned: -1, Stopped: true},
	}
	g := list()
	if len(g) != len(want) {
		t.Fatalf("got reports %+v, want %+v", g, want)
	}
	for i := range want {
		if g[i] != want[i] {
			t.Errorf("report %d: got %+v, want %+v", i, g[i], want[i])
		}
	}
}
