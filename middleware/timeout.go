package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seedmq/mq"
)

// TimeoutOptions configures Timeout.
type TimeoutOptions struct {
	// Timeout bounds one run of the handler. Default 30s.
	Timeout time.Duration
}

// Timeout returns middleware that gives each run of the handler a context
// that ends Timeout after the run starts. Go cannot stop a goroutine, so
// the handler must watch ctx: Timeout waits for it to return and never
// settles a message whose handler still runs. When the handler fails
// because its time ran out, the error says so and still satisfies
// errors.Is(err, context.DeadlineExceeded). It is an ordinary failure: the
// message is redelivered (or retried, or dead-lettered, by the middleware
// outside Timeout). Place Timeout innermost, so each retry gets the full
// time.
func Timeout(o TimeoutOptions) mq.Middleware {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			tctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			err := next(tctx, m)
			if err != nil && ctx.Err() == nil && tctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("middleware: handler timed out after %v: %w", o.Timeout, err)
			}
			return err
		}
	}
}
