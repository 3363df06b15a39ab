package conformance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/seedmq/mq"
)

// received is one handler run: a delivery and, once the handler has
// returned, its result.
type received struct {
	msg      *mq.Message // a copy of the delivered message
	at       time.Time   // when the handler started
	consumer int         // which subscription delivered it
	done     bool        // the handler has returned
	err      error       // the handler's result, once done
}

// collector records every delivery its handlers see and notifies waiters
// on each change. It is safe for concurrent use.
type collector struct {
	mu      sync.Mutex
	runs    []*received
	byID    map[string][]*received
	changed chan struct{} // closed and replaced on every change
}

func newCollector() *collector {
	return &collector{byID: map[string][]*received{}, changed: make(chan struct{})}
}

// changes returns a channel closed at the next change.
func (c *collector) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// notify wakes waiters. Callers hold c.mu.
func (c *collector) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// handler returns a handler that records each delivery for consumer and
// then runs fn (nil fn acknowledges everything). It records fn's result,
// and a panic as an error before passing the panic on.
func (c *collector) handler(consumer int, fn mq.Handler) mq.Handler {
	return func(ctx context.Context, m *mq.Message) (err error) {
		r := &received{msg: m.Clone(), at: time.Now(), consumer: consumer}
		c.mu.Lock()
		c.runs = append(c.runs, r)
		c.byID[m.ID] = append(c.byID[m.ID], r)
		c.notify()
		c.mu.Unlock()
		defer func() {
			p := recover()
			c.mu.Lock()
			r.done, r.err = true, err
			if p != nil {
				r.err = fmt.Errorf("panic: %v", p)
			}
			c.notify()
			c.mu.Unlock()
			if p != nil {
				panic(p)
			}
		}()
		if fn == nil {
			return nil
		}
		return fn(ctx, m)
	}
}

// count returns how many times id was delivered.
func (c *collector) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID[id])
}

// acks returns how many handler runs for id returned nil.
func (c *collector) acks(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.byID[id] {
		if r.done && r.err == nil {
			n++
		}
	}
	return n
}

// ackedAll reports whether every id has been acknowledged at least once.
func (c *collector) ackedAll(ids []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if !c.ackedLocked(id) {
			return false
		}
	}
	return true
}

func (c *collector) ackedLocked(id string) bool {
	for _, r := range c.byID[id] {
		if r.done && r.err == nil {
			return true
		}
	}
	return false
}

// missing returns the ids not yet acknowledged, at most limit of them.
func (c *collector) missing(ids []string, limit int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range ids {
		if !c.ackedLocked(id) {
			out = append(out, id)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

// deliveries returns copies of the records for id, in delivery order.
func (c *collector) deliveries(id string) []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]received, len(c.byID[id]))
	for i, r := range c.byID[id] {
		out[i] = *r
	}
	return out
}

// all returns copies of every record, in delivery order.
func (c *collector) all() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]received, len(c.runs))
	for i, r := range c.runs {
		out[i] = *r
	}
	return out
}

// attempts returns the Attempt of each delivery of id, in order.
func (c *collector) attempts(id string) []int {
	var out []int
	for _, r := range c.deliveries(id) {
		out = append(out, r.msg.Attempt)
	}
	return out
}

// total returns the number of handler runs so far.
func (c *collector) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs)
}

// summary describes what was received, for failure messages.
func (c *collector) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	acked := 0
	for id := range c.byID {
		if c.ackedLocked(id) {
			acked++
		}
	}
	return fmt.Sprintf("received %d deliveries of %d distinct IDs, %d IDs acknowledged", len(c.runs), len(c.byID), acked)
}
