package middleware

import (
	"context"
	"log/slog"
	"time"

	"github.com/seedmq/mq"
)

// LoggingOptions configures Logging.
type LoggingOptions struct {
	// Logger receives the lines. Default slog.Default().
	Logger *slog.Logger

	// Level is the level of failure and dead-letter lines. Default
	// slog.LevelWarn. Errors marked by mq.Permanent (which no DeadLetter
	// inside caught, so the driver drops or rejects the message) and failed
	// dead-letter publishes are logged 4 higher (slog.LevelError by
	// default), since they need a person.
	Level slog.Leveler

	// Success also logs one line per successful run at slog.LevelDebug.
	// Default false.
	Success bool

	// Body adds the message body to failure lines, cut to MaxBodyBytes.
	// Bodies may hold personal or secret data, so the default is false.
	Body bool

	// MaxBodyBytes bounds the body logged when Body is set. Default 512.
	MaxBodyBytes int
}

// Logging returns middleware that writes one structured line with log/slog
// for each failed handler run, with the message's id, topic, group,
// attempt, the run's duration and the error; and one line for each
// message a DeadLetter middleware inside it dead-lettered, with the
// dead-letter topic and the cause. Message bodies are not logged unless
// Body is set. A panic passes through unlogged: the driver logs it with
// its stack, and a Recover inside Logging turns it into an error logged
// here. Place it outside DeadLetter.
func Logging(o LoggingOptions) mq.Middleware {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Level == nil {
		o.Level = slog.LevelWarn
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 512
	}
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			ctx, p := observe(ctx)
			start := time.Now()
			err := next(ctx, m)
			level := o.Level.Level()
			switch {
			case err == nil && p.deadLettered:
				o.log(ctx, level, "mq: message dead-lettered", m, start, p.cause, slog.String("dlq", p.dlqTopic))
			case err == nil:
				if o.Success {
					o.log(ctx, slog.LevelDebug, "mq: message handled", m, start, nil)
				}
			case isDeadLetterFailure(err):
				o.log(ctx, level+4, "mq: dead-letter publish failed; the message will be redelivered", m, start, err)
			case mq.IsPermanent(err):
				o.log(ctx, level+4, "mq: handler failed permanently; the message will not be redelivered", m, start, err)
			default:
				o.log(ctx, level, "mq: handler failed; the message will be redelivered", m, start, err)
			}
			return err
		}
	}
}

func (o *LoggingOptions) log(ctx context.Context, level slog.Level, msg string, m *mq.Message, start time.Time, err error, extra ...slog.Attr) {
	if !o.Logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9+len(extra))
	attrs = append(attrs,
		slog.String("id", m.ID),
		slog.String("topic", m.Topic),
		slog.String("group", m.Group),
		slog.Int("attempt", m.Attempt),
		slog.Duration("duration", time.Since(start)))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	attrs = append(attrs, extra...)
	if o.Body && err != nil {
		attrs = append(attrs, slog.String("body", truncate(string(m.Body), o.MaxBodyBytes)))
	}
	o.Logger.LogAttrs(ctx, level, msg, attrs...)
}
