package middleware

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/seedmq/mq"
)

// RetryOptions configures Retry. The zero value is ready to use.
type RetryOptions struct {
	// MaxAttempts is the most times the handler runs for one delivery,
	// the first run included. Default 3. Negative means no limit, in which
	// case MaxElapsed should be set.
	MaxAttempts int

	// MaxElapsed bounds the time spent retrying one delivery, counted
	// from its first failure, runs and waits included: no retry starts
	// whose wait would end after it. Default 0, no bound other than
	// MaxAttempts.
	MaxElapsed time.Duration

	// InitialInterval is the wait before the first retry. Default 100ms.
	InitialInterval time.Duration

	// MaxInterval caps the wait between two runs. Default 5s.
	MaxInterval time.Duration

	// Multiplier grows the wait after each retry. Default 2.
	Multiplier float64

	// Jitter is the randomization factor: each wait is drawn uniformly
	// from [w·(1-Jitter), w·(1+Jitter)]. Default 0.5. Negative means no
	// jitter.
	Jitter float64

	// ShouldRetry reports whether an error is worth retrying in process.
	// Default: every error. Errors marked by mq.Permanent are never
	// retried, whatever ShouldRetry says.
	ShouldRetry func(error) bool
}

// Retry returns middleware that runs the handler again, in the same
// process and without going back to the broker, when it fails: up to
// MaxAttempts runs and within MaxElapsed, waiting an exponentially growing,
// jittered interval between runs. It never retries an mq.Permanent error,
// nor one ShouldRetry rejects, and stops when the handler's ctx ends. It
// returns nil as soon as a run succeeds, and otherwise the last run's
// error, so the message is then negatively acknowledged and the broker
// redelivers it with Attempt increased (Message.Attempt counts broker
// deliveries; Retry does not change it).
//
// A handler that asks for a delay with mq.RetryAfter is retried after that
// delay if it is within MaxInterval; a longer delay ends the in-process
// retries and the error goes back to the broker, which honours it.
//
// The first run costs no allocation: the backoff state is created only
// after a failure.
func Retry(o RetryOptions) mq.Middleware {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.InitialInterval <= 0 {
		o.InitialInterval = 100 * time.Millisecond
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = 5 * time.Second
	}
	if o.Multiplier <= 0 {
		o.Multiplier = 2
	}
	switch {
	case o.Jitter == 0:
		o.Jitter = 0.5
	case o.Jitter < 0:
		o.Jitter = 0
	}
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			err := next(ctx, m)
			if err == nil || !o.retryable(err) || o.MaxAttempts == 1 {
				return err
			}
			return o.retry(ctx, next, m, err)
		}
	}
}

func (o *RetryOptions) retryable(err error) bool {
	return !mq.IsPermanent(err) && (o.ShouldRetry == nil || o.ShouldRetry(err))
}

// retry runs next again after the first run failed with err.
func (o *RetryOptions) retry(ctx context.Context, next mq.Handler, m *mq.Message, err error) error {
	start := time.Now()
	b := &backoff.ExponentialBackOff{
		InitialInterval:     o.InitialInterval,
		RandomizationFactor: o.Jitter,
		Multiplier:          o.Multiplier,
		MaxInterval:         o.MaxInterval,
	}
	b.Reset()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for run := 2; o.MaxAttempts < 0 || run <= o.MaxAttempts; run++ {
		wait := b.NextBackOff()
		if d, ok := mq.RetryDelay(err); ok {
			if d > o.MaxInterval {
				return err
			}
			wait = d
		}
		if o.MaxElapsed > 0 && time.Since(start)+wait > o.MaxElapsed {
			return err
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return err
		}
		err = next(ctx, m)
		if err == nil || !o.retryable(err) {
			return err
		}
	}
	return err
}
