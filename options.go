package mq

import (
	"fmt"
	"time"

	"github.com/seedmq/mq/internal/hook"
)

// StartPosition says where a group that does not exist yet starts reading.
type StartPosition int

const (
	// Latest starts a new group with the messages published after it was
	// created. This is the default, and what every broker supports.
	Latest StartPosition = iota
	// Earliest starts a new group with the oldest message the broker still
	// holds for the topic (replay). Brokers without the Replay capability
	// reject it with ErrNotSupported.
	Earliest
)

func (p StartPosition) String() string {
	switch p {
	case Latest:
		return "latest"
	case Earliest:
		return "earliest"
	}
	return fmt.Sprintf("StartPosition(%d)", int(p))
}

// BackoffFunc returns how long to wait before redelivering a message whose
// handler failed on the given attempt (1 for the first delivery).
type BackoffFunc func(attempt int) time.Duration

// ExponentialBackoff returns a BackoffFunc that waits base after the first
// attempt and doubles the wait on each later attempt, up to max. It adds no
// jitter, so the delay is a lower bound tests can rely on.
func ExponentialBackoff(base, max time.Duration) BackoffFunc {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		return min(d, max)
	}
}

// Default subscription settings.
const (
	// DefaultConcurrency is how many handlers a subscription runs at once
	// unless Concurrency is given.
	DefaultConcurrency = 1
	// DefaultBackoffBase and DefaultBackoffMax shape the default Backoff:
	// ExponentialBackoff(DefaultBackoffBase, DefaultBackoffMax).
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
)

// subscribeOptions is what a Subscribe call's options set. Drivers read
// it through package driver's NewSubscribeConfig.
type subscribeOptions struct {
	group       string
	concurrency int
	startAt     StartPosition
	backoff     BackoffFunc
	state       func(SubscriptionState)
}

func init() {
	hook.ApplySubscribeOptions = func(opts any, o *hook.SubscribeOptions) {
		c := subscribeOptions{group: o.Group, concurrency: o.Concurrency, startAt: StartPosition(o.StartAt), backoff: o.Backoff}
		for _, opt := range opts.([]SubscribeOption) {
			if opt != nil {
				opt(&c)
			}
		}
		*o = hook.SubscribeOptions{Group: c.group, Concurrency: c.concurrency, StartAt: int(c.startAt), Backoff: c.backoff}
		if c.state != nil {
			o.State = c.state
		}
	}
}

// SubscribeOption configures one Subscribe call.
type SubscribeOption func(*subscribeOptions)

// Group sets the consumer group. Subscriptions with the same group share
// its messages; each group receives every message published to the topic.
func Group(name string) SubscribeOption {
	return func(c *subscribeOptions) { c.group = name }
}

// Concurrency sets the most handlers that run at once for the
// subscription (default 1). Messages of one key still run one at a time on
// brokers with OrderingByKey.
func Concurrency(n int) SubscribeOption {
	return func(c *subscribeOptions) { c.concurrency = n }
}

// StartAt sets where a group that does not exist yet starts reading.
// It has no effect on an existing group, which resumes where it left off.
func StartAt(p StartPosition) SubscribeOption {
	return func(c *subscribeOptions) { c.startAt = p }
}

// Backoff sets how long a failed message waits before it is redelivered.
// A handler can override it for one failure with RetryAfter.
func Backoff(f BackoffFunc) SubscribeOption {
	return func(c *subscribeOptions) { c.backoff = f }
}
