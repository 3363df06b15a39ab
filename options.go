package mq

import (
	"fmt"
	"time"
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

// SubscribeConfig is the result of applying SubscribeOptions. Drivers read
// it; users set it through the option functions.
type SubscribeConfig struct {
	// Group names the consumer group. Empty means the driver's default
	// (its URL's group parameter); drivers with fan-out reject an empty
	// group with ErrInvalidOption.
	Group string
	// Concurrency is the most handlers run at once. Default 1.
	Concurrency int
	// StartAt is where a new group starts. Default Latest.
	StartAt StartPosition
	// Backoff is the redelivery delay after a failed attempt. Default
	// ExponentialBackoff(DefaultBackoffBase, DefaultBackoffMax).
	Backoff BackoffFunc
}

// SubscribeOption configures one Subscribe call.
type SubscribeOption func(*SubscribeConfig)

// Group sets the consumer group. Subscriptions with the same group share
// its messages; each group receives every message published to the topic.
func Group(name string) SubscribeOption {
	return func(c *SubscribeConfig) { c.Group = name }
}

// Concurrency sets the most handlers that run at once for the
// subscription (default 1). Messages of one key still run one at a time on
// brokers with OrderingByKey.
func Concurrency(n int) SubscribeOption {
	return func(c *SubscribeConfig) { c.Concurrency = n }
}

// StartAt sets where a group that does not exist yet starts reading.
// It has no effect on an existing group, which resumes where it left off.
func StartAt(p StartPosition) SubscribeOption {
	return func(c *SubscribeConfig) { c.StartAt = p }
}

// Backoff sets how long a failed message waits before it is redelivered.
// A handler can override it for one failure with RetryAfter.
func Backoff(f BackoffFunc) SubscribeOption {
	return func(c *SubscribeConfig) { c.Backoff = f }
}

// NewSubscribeConfig applies opts over the defaults and validates the
// result. defaultGroup is used when no Group option is given. Drivers call
// it at the start of Subscribe.
func NewSubscribeConfig(defaultGroup string, opts ...SubscribeOption) (SubscribeConfig, error) {
	c := SubscribeConfig{
		Group:       defaultGroup,
		Concurrency: DefaultConcurrency,
		Backoff:     ExponentialBackoff(DefaultBackoffBase, DefaultBackoffMax),
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.Concurrency < 1 {
		return c, fmt.Errorf("%w: Concurrency(%d): must be at least 1", ErrInvalidOption, c.Concurrency)
	}
	if c.StartAt != Latest && c.StartAt != Earliest {
		return c, fmt.Errorf("%w: StartAt(%v): use mq.Latest or mq.Earliest", ErrInvalidOption, c.StartAt)
	}
	if c.Backoff == nil {
		return c, fmt.Errorf("%w: Backoff(nil): pass a BackoffFunc", ErrInvalidOption)
	}
	if c.Group != "" {
		if err := ValidateName("group", c.Group); err != nil {
			return c, err
		}
	}
	return c, nil
}

// RedeliveryDelay returns the delay before redelivering a message that
// failed on attempt with err: the RetryAfter delay if err carries one,
// else c.Backoff(attempt).
func (c SubscribeConfig) RedeliveryDelay(attempt int, err error) time.Duration {
	if d, ok := RetryDelay(err); ok {
		return max(d, 0)
	}
	if c.Backoff == nil {
		return 0
	}
	return max(c.Backoff(attempt), 0)
}
