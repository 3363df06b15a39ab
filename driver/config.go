package driver

import (
	"fmt"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/internal/hook"
)

// MaxConcurrency is the largest mq.Concurrency a subscription accepts. It
// bounds the goroutines, buffers and broker prefetch that drivers size
// from it.
const MaxConcurrency = 10000

// SubscribeConfig is what a Subscribe call's options ask for, with the
// defaults applied. Drivers build it with NewSubscribeConfig at the start
// of Subscribe.
type SubscribeConfig struct {
	// Group names the consumer group: the Group option, else the
	// driver's default (its URL's group parameter). It may be empty;
	// drivers with fan-out reject an empty group with
	// mq.ErrInvalidOption.
	Group string
	// Concurrency is the most handlers run at once: 1 to
	// MaxConcurrency, default mq.DefaultConcurrency.
	Concurrency int
	// StartAt is where a new group starts. Default mq.Latest.
	StartAt mq.StartPosition
	// Backoff is the redelivery delay after a failed attempt. Default
	// mq.ExponentialBackoff(mq.DefaultBackoffBase, mq.DefaultBackoffMax).
	Backoff mq.BackoffFunc

	// state receives SetConnected and SetAssigned; nil without
	// mq.WatchState.
	state *stateReport
}

// NewSubscribeConfig applies opts over the defaults and validates the
// result: a Concurrency out of range, an unknown StartAt, a nil Backoff
// or a malformed group name is an error wrapping mq.ErrInvalidOption.
// defaultGroup is used when no Group option is given; defaultStart when
// no StartAt option is given.
func NewSubscribeConfig(defaultGroup string, defaultStart mq.StartPosition, opts []mq.SubscribeOption) (SubscribeConfig, error) {
	o := hook.SubscribeOptions{
		Group:       defaultGroup,
		Concurrency: mq.DefaultConcurrency,
		StartAt:     int(defaultStart),
		Backoff:     mq.ExponentialBackoff(mq.DefaultBackoffBase, mq.DefaultBackoffMax),
	}
	hook.ApplySubscribeOptions(opts, &o)
	c := SubscribeConfig{Group: o.Group, Concurrency: o.Concurrency, StartAt: mq.StartPosition(o.StartAt), Backoff: o.Backoff, state: newStateReport(o.State)}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		return c, fmt.Errorf("%w: Concurrency(%d): want 1 to %d", mq.ErrInvalidOption, c.Concurrency, MaxConcurrency)
	}
	if c.StartAt != mq.Latest && c.StartAt != mq.Earliest {
		return c, fmt.Errorf("%w: StartAt(%v): use mq.Latest or mq.Earliest", mq.ErrInvalidOption, c.StartAt)
	}
	if c.Backoff == nil {
		return c, fmt.Errorf("%w: Backoff(nil): pass a BackoffFunc", mq.ErrInvalidOption)
	}
	if c.Group != "" {
		if err := ValidateName("group", c.Group); err != nil {
			return c, err
		}
	}
	return c, nil
}

// RedeliveryDelay returns the delay before redelivering a message that
// failed on attempt with err: the mq.RetryAfter delay if err carries one,
// else c.Backoff(attempt). It is never negative.
func (c SubscribeConfig) RedeliveryDelay(attempt int, err error) time.Duration {
	if d, ok := mq.RetryDelay(err); ok {
		return max(d, 0)
	}
	if c.Backoff == nil {
		return 0
	}
	return max(c.Backoff(attempt), 0)
}

// RequireGroup returns nil if c names a group, and otherwise the error,
// wrapping mq.ErrInvalidOption, that drivers whose groups are separate
// queues or consumer groups (every driver with FanOut) return from
// Subscribe.
func (c SubscribeConfig) RequireGroup() error {
	if c.Group != "" {
		return nil
	}
	return fmt.Errorf("%w: Subscribe needs a group: pass mq.Group(name) or set the URL's group parameter", mq.ErrInvalidOption)
}
