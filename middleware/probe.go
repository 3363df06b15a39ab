package middleware

import (
	"context"
	"time"
)

// probe carries what inner middleware learned about one message to the
// observing middleware (Metrics, Logging) further out in the chain: today,
// that DeadLetter moved it to the dead-letter topic, which an outer
// middleware cannot tell from the nil error DeadLetter returns. It is its
// own context, so observing a message costs one allocation; nested
// observers share the outermost probe.
type probe struct {
	context.Context
	deadLettered bool
	dlqTopic     string
	cause        error // the handler error that made the message a dead letter
}

type probeKey struct{}

func (p *probe) Value(key any) any {
	if key == (probeKey{}) {
		return p
	}
	return p.Context.Value(key)
}

// observe returns a context carrying a probe, reusing one an outer
// middleware installed.
func observe(ctx context.Context) (context.Context, *probe) {
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		return ctx, p
	}
	p := &probe{Context: ctx}
	return p, p
}

// reportDeadLetter tells the observers in ctx, if any, that the message was
// dead-lettered to topic because of cause.
func reportDeadLetter(ctx context.Context, topic string, cause error) {
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		p.deadLettered, p.dlqTopic, p.cause = true, topic, cause
	}
}

// since returns the seconds elapsed since start, for histograms.
func since(start time.Time) float64 { return time.Since(start).Seconds() }
