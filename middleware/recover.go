package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/seedmq/mq"
)

// RecoverOptions configures Recover.
type RecoverOptions struct {
	// Logger receives one error-level line per panic, with its stack.
	// Default slog.Default().
	Logger *slog.Logger

	// Permanent makes a panic an mq.Permanent error, so DeadLetter moves
	// the message to the dead-letter topic at once instead of after
	// MaxAttempts deliveries. Default false.
	Permanent bool
}

// Recover returns middleware that turns a panic in the handler into an
// error, logged with its stack.
//
// The drivers already recover panics (the message is redelivered), so
// Recover is not needed to keep a service alive. It is needed for the
// middleware outside it to see the failure: a panic unwinds straight
// through DeadLetter, Retry, Logging and Metrics, so without Recover inside
// them a message that always panics is never dead-lettered and is
// redelivered forever. Place it inside Retry and DeadLetter, outside
// Timeout. It also protects handlers called outside a driver.
func Recover(o RecoverOptions) mq.Middleware {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) (err error) {
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				o.Logger.ErrorContext(ctx, "mq: handler panicked",
					"id", m.ID, "topic", m.Topic, "group", m.Group, "attempt", m.Attempt,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if e, ok := p.(error); ok {
					err = fmt.Errorf("middleware: handler panicked: %w", e)
				} else {
					err = fmt.Errorf("middleware: handler panicked: %v", p)
				}
				if o.Permanent {
					err = mq.Permanent(err)
				}
			}()
			return next(ctx, m)
		}
	}
}
