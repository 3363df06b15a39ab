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
