package middleware

import (
	"context"

	"github.com/seedmq/mq"
)

// Chain returns one Middleware that applies mws in order, the first one
// outermost: Chain(a, b, c)(h) is a(b(c(h))), so a message passes through
// a, then b, then c, then reaches h, and the result travels back out
// through c, b and a. This is the one ordering rule of the package; the
// package documentation recommends a stack. Nil entries are skipped, and
// Chain() returns a Middleware that leaves the handler as it is.
func Chain(mws ...mq.Middleware) mq.Middleware {
	return func(h mq.Handler) mq.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			if mws[i] != nil {
				h = mws[i](h)
			}
		}
		return h
	}
}

// PublishFunc is the signature of mq.Publisher's Publish method, the unit
// that publisher middleware wraps.
type PublishFunc func(ctx context.Context, topic string, msgs ...*mq.Message) error

// PublisherMiddleware wraps a PublishFunc to add behaviour around Publish,
// such as injecting trace context or counting messages. It follows the
// same rule as Chain: the first middleware given is outermost.
type PublisherMiddleware func(PublishFunc) PublishFunc

// ChainPublisher returns one PublisherMiddleware that applies mws in
// order, the first one outermost, like Chain. Nil entries are skipped.
func ChainPublisher(mws ...PublisherMiddleware) PublisherMiddleware {
	return func(next PublishFunc) PublishFunc {
		for i := len(mws) - 1; i >= 0; i-- {
			if mws[i] != nil {
				next = mws[i](next)
			}
		}
		return next
	}
}

// WrapPublisher returns a Publisher whose Publish runs through mws (the
// first outermost) before reaching p. Close is p's Close. The result
// implements mq.Unwrapper, so mq.Provision, mq.Ping and mq.As reach p and
// whatever p wraps.
func WrapPublisher(p mq.Publisher, mws ...PublisherMiddleware) mq.Publisher {
	return &publisher{p: p, publish: ChainPublisher(mws...)(p.Publish)}
}

type publisher struct {
	p       mq.Publisher
	publish PublishFunc
}

func (w *publisher) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	return w.publish(ctx, topic, msgs...)
}

func (w *publisher) Close(ctx context.Context) error { return w.p.Close(ctx) }

// Unwrap returns the wrapped Publisher.
func (w *publisher) Unwrap() any { return w.p }

// WrapBroker returns a Broker that sends every Publish through publish and
// wraps the handler of every Subscribe with handle. Either may be nil. Use
// ChainPublisher and Chain to combine several. Capabilities, Subscribe
// options and Close are b's own. The result implements mq.Unwrapper, so
// mq.Provision, mq.Ping and mq.As reach b.
//
// Wrapping the broker rather than each handler keeps a service's
// instrumentation in one place:
//
//	b = middleware.WrapBroker(b,
//		middleware.TracingPublisher(middleware.TracingOptions{}),
//		middleware.Chain(middleware.Tracing(middleware.TracingOptions{}), middleware.Logging(middleware.LoggingOptions{})))
func WrapBroker(b mq.Broker, publish PublisherMiddleware, handle mq.Middleware) mq.Broker {
	w := &broker{b: b, publish: b.Publish, handle: handle}
	if publish != nil {
		w.publish = publish(b.Publish)
	}
	return w
}

type broker struct {
	b       mq.Broker
	publish PublishFunc
	handle  mq.Middleware
}

func (w *broker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	return w.publish(ctx, topic, msgs...)
}

func (w *broker) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
	if w.handle != nil && h != nil {
		h = w.handle(h)
	}
	return w.b.Subscribe(ctx, topic, h, opts...)
}

func (w *broker) Close(ctx context.Context) error { return w.b.Close(ctx) }

func (w *broker) Capabilities() mq.Capabilities { return w.b.Capabilities() }

// Unwrap returns the wrapped Broker.
func (w *broker) Unwrap() any { return w.b }
