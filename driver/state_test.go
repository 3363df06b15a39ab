package driver_test

import (
	"context"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

func TestSubscriptionStateReports(t *testing.T) {
	var got []mq.SubscriptionState
	var l driver.Lifecycle
	h := func(ctx context.Context, m *mq.Message) error { return nil }
	cfg, exit, err := driver.StartSubscribe(&l, "t", h, "g", mq.Latest,
		[]mq.SubscribeOption{mq.WatchState(func(s mq.SubscriptionState) { got = append(got, s) })})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetConnected(true)
	cfg.SetConnected(true) // no change: no call
	cfg.SetAssigned(3)
	cfg.SetConnected(false)
	cfg.SetConnected(true)
	exit()
	want := []mq.SubscriptionState{
		{Connected: true, Assigned: -1},
		{Connected: true, Assigned: 3},
		{Connected: false, Assigned: 3},
		{Connected: true, Assigned: 3},
		{Connected: false, Assigned: 3, Stopped: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got states %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("state %d: got %+v, want %+v", i, got[i], want[i])
		}
	}

	// Without WatchState, reports cost nothing and do nothing.
	cfg, exit, err = driver.StartSubscribe(&l, "t", h, "g", mq.Latest, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetConnected(true)
	cfg.SetAssigned(1)
	exit()
}

func TestSubscriptionStateOnExitOnly(t *testing.T) {
	// A subscription that never connected still reports its end.
	var got []mq.SubscriptionState
	var l driver.Lifecycle
	_, exit, err := driver.StartSubscribe(&l, "t", func(ctx context.Context, m *mq.Message) error { return nil }, "g", mq.Latest,
		[]mq.SubscribeOption{mq.WatchState(func(s mq.SubscriptionState) { got = append(got, s) })})
	if err != nil {
		t.Fatal(err)
	}
	exit()
	if len(got) != 1 || got[0] != (mq.SubscriptionState{Connected: false, Assigned: -1, Stopped: true}) {
		t.Errorf("got states %+v, want one not connected, assigned -1, stopped", got)
	}
}
