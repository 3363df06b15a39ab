package sqs

import (
	"context"
	"testing"
)

// TestCreditsWakeOnFullBatch: giving credits back wakes a waiting
// receiver only once a full batch is free, which is all take waits for.
// Before, every credit given back (one per message handled) woke it for
// nothing, a goroutine switch per message.
func TestCreditsWakeOnFullBatch(t *testing.T) {
	c := newCredits(maxBatch + 1)
	if n, ok := c.take(context.Background()); !ok || n != maxBatch {
		t.Fatalf("take: got %d, %v; want %d, true", n, ok, maxBatch)
	}
	for i := 1; i < maxBatch-1; i++ {
		c.give(1)
		if len(c.signal) != 0 {
			t.Fatalf("after giving back %d of %d credits (%d free): a receiver was woken, want none until %d are free", i, maxBatch, i+1, maxBatch)
		}
	}
	c.give(1)
	if len(c.signal) != 1 {
		t.Fatalf("with %d credits free: no receiver woken, want one", c.free)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, ok := c.take(ctx); !ok || n != maxBatch {
		t.Errorf("take with %d free: got %d, %v; want %d, true", maxBatch, n, ok, maxBatch)
	}
}

// TestNeedLoop pins when a batch loop (send or delete) starts: a partial
// batch waits for a busy loop, to grow with what comes meanwhile; a full
// one does not.
func TestNeedLoop(t *testing.T) {
	for _, c := range []struct {
		pending, active, busy int
		want                  bool
	}{
		{pending: 1, active: 0, busy: 0, want: true},            // nothing runs
		{pending: 5, active: 1, busy: 1, want: false},           // partial batch waits to grow
		{pending: 10, active: 1, busy: 0, want: false},          // the free loop takes it
		{pending: 10, active: 1, busy: 1, want: true},           // full batch, every loop busy
		{pending: 19, active: 2, busy: 1, want: false},          // the free loop takes ten, nine wait
		{pending: 20, active: 2, busy: 1, want: true},           // ten would wait
		{pending: 11, active: 1, busy: 0, want: true},           // more than the loops take in a round
		{pending: 3 * maxBatch, active: 3, busy: 3, want: true}, // busy loops take nothing now
	} {
		if got := needLoop(c.pending, c.active, c.busy); got != c.want {
			t.Errorf("needLoop(pending %d, active %d, busy %d) = %v, want %v", c.pending, c.active, c.busy, got, c.want)
		}
	}
}
