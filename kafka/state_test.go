package kafka_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// lastState keeps the last state mq.WatchState reported.
type lastState struct {
	mu sync.Mutex
	st mq.SubscriptionState
}

func (l *lastState) set(st mq.SubscriptionState) {
	l.mu.Lock()
	l.st = st
	l.mu.Unlock()
}

func (l *lastState) get() mq.SubscriptionState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// TestSubscriptionStateAssigned checks the partitions each member of a
// group reports: all of them for a lone member, then, with a second
// member, a share each that sums to the partition count.
func TestSubscriptionStateAssigned(t *testing.T) {
	const partitions = 3
	b := open(t, "partitions=3")
	ctx := ctxFor(t, 2*time.Minute)
	topic, group := uniqueName(t, "state"), uniqueName(t, "g")
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	h := func(context.Context, *mq.Message) error { return nil }
	await := func(what string, ok func() bool) {
		t.Helper()
		for ctx.Err() == nil {
			if ok() {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: not within the test's bound", what)
	}

	var a, c lastState
	stopA := subscribe(t, b, topic, h, mq.Group(group), mq.WatchState(a.set))
	await("the lone member connected with every partition", func() bool {
		st := a.get()
		return st.Connected && st.Assigned == partitions
	})

	subscribe(t, b, topic, h, mq.Group(group), mq.WatchState(c.set))
	await("two members connected, sharing the partitions", func() bool {
		sa := a.get()
		sc := c.get()
		return sa.Connected && sc.Connected && sa.Assigned > 0 && sc.Assigned > 0 && sa.Assigned+sc.Assigned == partitions
	})

	if err := stopA(); err != context.Canceled {
		t.Errorf("Subscribe: got %v, want context.Canceled", err)
	}
	if st := a.get(); st.Connected || !st.Stopped || st.Assigned != 0 {
		t.Errorf("stopped member's last report: got %+v, want not connected, stopped, no partition", st)
	}
	await("the remaining member connected with every partition", func() bool {
		st := c.get()
		return st.Connected && st.Assigned == partitions
	})
}
