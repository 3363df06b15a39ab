package sqs

import (
	"context"
	"sync"
)

// credits bounds the messages a subscription holds and has not settled:
// a receiver asks for as many messages as it has credits, and a message's
// credit comes back when it is settled (for an acknowledged message, see
// ack).
type credits struct {
	total  int
	mu     sync.Mutex
	free   int
	signal chan struct{} // a credit came back
}

func newCredits(total int) *credits {
	return &credits{total: total, free: total, signal: make(chan struct{}, 1)}
}

// take waits until a full batch of credits is free (every subscription
// has at least that many: Concurrency plus ten per receiver), takes them,
// and returns how many. Waiting for a full batch rather than taking what
// is free makes fewer, fuller ReceiveMessage calls: messages still held
// free their credits soon. It returns false if ctx ends first.
func (c *credits) take(ctx context.Context) (int, bool) {
	for {
		c.mu.Lock()
		if c.free >= maxBatch {
			c.free -= maxBatch
			more := c.free >= maxBatch
			c.mu.Unlock()
			if more {
				c.wake() // another receiver may take the next batch
			}
			return maxBatch, true
		}
		c.mu.Unlock()
		select {
		case <-c.signal:
		case <-ctx.Done():
			return 0, false
		}
	}
}

// give returns n credits, waking a receiver if a full batch is free:
// take waits for no less, and waking it for every credit given back
// cost a goroutine switch per message.
func (c *credits) give(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.free += n
	full := c.free >= maxBatch
	c.mu.Unlock()
	if full {
		c.wake()
	}
}

func (c *credits) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}
