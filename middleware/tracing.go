package middleware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/seedmq/mq"
)

// instrumentation is the instrumentation scope name of the tracer and
// meter this package uses.
const instrumentation = "github.com/seedmq/mq/middleware"

// TracingOptions configures Tracing and TracingPublisher.
type TracingOptions struct {
	// TracerProvider creates the spans. Default otel.GetTracerProvider(),
	// the global provider (which follows a later otel.SetTracerProvider).
	TracerProvider trace.TracerProvider

	// Propagator injects trace context into message headers and extracts
	// it. Default otel.GetTextMapPropagator(), the global propagator. The
	// global default propagates nothing: set one, for example with
	// otel.SetTextMapPropagator(propagation.TraceContext{}) for W3C trace
	// context ("traceparent" and "tracestate" headers), or give it here.
	Propagator propagation.TextMapPropagator

	// System is the messaging.system attribute: "kafka", "rabbitmq",
	// "aws_sqs"... SystemOf derives it from a broker. Default: empty, and
	// the attribute is left out.
	System string
}

func (o *TracingOptions) tracer() trace.Tracer {
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(instrumentation, trace.WithSchemaURL(semconv.SchemaURL))
}

func (o *TracingOptions) propagator() propagation.TextMapPropagator {
	if o.Propagator != nil {
		return o.Propagator
	}
	return otel.GetTextMapPropagator()
}

// SystemOf returns the OpenTelemetry messaging.system value for b's driver
// (found through Unwrap chains by b.Capabilities): "kafka", "rabbitmq",
// "aws_sqs", or the driver's own name for others ("memory").
func SystemOf(b mq.Broker) string {
	switch d := b.Capabilities().Driver; d {
	case "sqs":
		return "aws_sqs"
	default:
		return d
	}
}

// Tracing returns middleware that runs each delivery inside a "process
// <topic>" span of kind consumer. The span is a child of the producer span
// whose context the Propagator extracts from the message's headers (put
// there by TracingPublisher), so a trace crosses the broker; without one
// it is a child of the handler's ctx. Its attributes follow the
// OpenTelemetry messaging conventions: messaging.system (when System is
// set), messaging.destination.name, messaging.consumer.group.name,
// messaging.operation.type "process", messaging.operation.name "process",
// messaging.message.id and messaging.message.body.size, plus
// mq.message.attempt, set just after the span starts when it is
// recording (so samplers see name and kind only). A handler error is
// recorded on the span, which gets status Error and an error.type
// attribute; so is a panic, which then goes on. The handler's ctx carries
// the span.
//
// Place Tracing outermost, so the span covers retries and dead-lettering
// and spans started by inner middleware (such as the dead-letter publish)
// are its children.
func Tracing(o TracingOptions) mq.Middleware {
	tracer := o.tracer()
	prop := o.propagator()
	var names spanNames
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			if len(m.Header) > 0 {
				ctx = prop.Extract(ctx, propagation.MapCarrier(m.Header))
			}
			ctx, span := tracer.Start(ctx, names.get("process ", m.Topic), consumerKind)
			if span.IsRecording() {
				// Set after Start rather than passed to it: building them
				// for a span nobody records is most of a no-op tracer's
				// cost. Samplers therefore see the span name and kind
				// only.
				span.SetAttributes(o.processAttrs(make([]attribute.KeyValue, 0, 8), m)...)
			}
			defer func() {
				// A panic passing through still ends the span, with the
				// panic recorded; the driver (or Recover) handles it.
				if p := recover(); p != nil {
					recordError(span, fmt.Errorf("panic: %v", p))
					span.End()
					panic(p)
				}
			}()
			err := next(ctx, m)
			if err != nil {
				recordError(span, err)
			}
			span.End()
			return err
		}
	}
}

// Span start options, made once.
var (
	consumerKind = trace.WithSpanKind(trace.SpanKindConsumer)
	producerKind = trace.WithSpanKind(trace.SpanKindProducer)
)

// spanNames remembers the last span name built, since a subscription's
// messages share one topic: this saves a string concatenation per span.
type spanNames struct {
	last atomic.Pointer[spanName]
}

type spanName struct{ prefix, topic, name string }

func (n *spanNames) get(prefix, topic string) string {
	if l := n.last.Load(); l != nil && l.topic == topic && l.prefix == prefix {
		return l.name
	}
	l := &spanName{prefix: prefix, topic: topic, name: prefix + topic}
	n.last.Store(l)
	return l.name
}

func (o *TracingOptions) processAttrs(a []attribute.KeyValue, m *mq.Message) []attribute.KeyValue {
	if o.System != "" {
		a = append(a, semconv.MessagingSystemKey.String(o.System))
	}
	a = append(a,
		semconv.MessagingDestinationName(m.Topic),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingMessageID(m.ID),
		semconv.MessagingMessageBodySize(len(m.Body)),
		attrAttempt.Int(m.Attempt),
	)
	if m.Group != "" {
		a = append(a, semconv.MessagingConsumerGroupName(m.Group))
	}
	return a
}

var attrAttempt = attribute.Key("mq.message.attempt")

// recordError records err on span, sets its status to Error and adds the
// error.type attribute.
func recordError(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
}

// errorType classifies err for the error.type attribute, keeping its
// cardinality low.
func errorType(err error) string {
	switch {
	case isDeadLetterFailure(err):
		return "dead_letter_publish"
	case mq.IsPermanent(err):
		return "permanent"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return semconv.ErrorType(err).Value.AsString()
}

// TracingPublisher returns publisher middleware that traces each Publish
// and injects the trace context into each message's headers with the
// Propagator, for Tracing to extract on the subscriber side.
//
// A Publish of one message gets one "send <topic>" span of kind producer,
// whose context goes into the message. A batch gets, per message, a
// "create <topic>" span of kind producer (its context goes into that
// message, so each message starts its own branch of the trace), and one
// "send <topic>" span of kind client, linked to each create span, covering
// the call: this is the layout the OpenTelemetry messaging conventions give
// for batches. Spans carry messaging.system (when System is set),
// messaging.destination.name, messaging.operation.type and .name,
// messaging.message.id and messaging.message.body.size (for a single
// message) or messaging.batch.message_count, set just after the span
// starts when it is recording (so samplers see name and kind only). A
// Publish error is recorded on the send span.
//
// The caller's messages are not modified, except that an empty ID is
// filled with mq.NewID() before publishing, as Publish itself would do, so
// the span can name it: the driver is given copies whose Header holds the
// injected context (when there is any to inject).
func TracingPublisher(o TracingOptions) PublisherMiddleware {
	tracer := o.tracer()
	prop := o.propagator()
	var names spanNames
	return func(next PublishFunc) PublishFunc {
		return func(ctx context.Context, topic string, msgs ...*mq.Message) error {
			for _, m := range msgs {
				if m == nil {
					return next(ctx, topic, msgs...) // let the driver report it
				}
				if m.ID == "" {
					m.ID = mq.NewID()
				}
			}
			if len(msgs) == 1 {
				m := msgs[0]
				sctx, span := tracer.Start(ctx, names.get("send ", topic), producerKind)
				if span.IsRecording() {
					span.SetAttributes(o.sendAttrs(topic, m)...)
				}
				err := next(sctx, topic, inject(sctx, prop, m))
				if err != nil {
					recordError(span, err)
				}
				span.End()
				return err
			}
			out := make([]*mq.Message, len(msgs))
			links := make([]trace.Link, len(msgs))
			for i, m := range msgs {
				cctx, span := tracer.Start(ctx, "create "+topic, producerKind)
				if span.IsRecording() {
					span.SetAttributes(o.createAttrs(topic, m)...)
				}
				out[i] = inject(cctx, prop, m)
				links[i] = trace.Link{SpanContext: span.SpanContext()}
				span.End()
			}
			sctx, span := tracer.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...))
			if span.IsRecording() {
				span.SetAttributes(o.batchAttrs(topic, len(msgs))...)
			}
			err := next(sctx, topic, out...)
			if err != nil {
				recordError(span, err)
			}
			span.End()
			return err
		}
	}
}

func (o *TracingOptions) base(topic string, a []attribute.KeyValue) []attribute.KeyValue {
	if o.System != "" {
		a = append(a, semconv.MessagingSystemKey.String(o.System))
	}
	return append(a, semconv.MessagingDestinationName(topic))
}

func (o *TracingOptions) sendAttrs(topic string, m *mq.Message) []attribute.KeyValue {
	return append(o.base(topic, make([]attribute.KeyValue, 0, 6)),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingMessageID(m.ID),
		semconv.MessagingMessageBodySize(len(m.Body)))
}

func (o *TracingOptions) createAttrs(topic string, m *mq.Message) []attribute.KeyValue {
	return append(o.base(topic, make([]attribute.KeyValue, 0, 6)),
		semconv.MessagingOperationTypeCreate,
		semconv.MessagingOperationName("create"),
		semconv.MessagingMessageID(m.ID),
		semconv.MessagingMessageBodySize(len(m.Body)))
}

func (o *TracingOptions) batchAttrs(topic string, n int) []attribute.KeyValue {
	return append(o.base(topic, make([]attribute.KeyValue, 0, 5)),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingBatchMessageCount(n))
}

// inject returns m, or when prop has context to inject from ctx, a shallow
// copy of m whose Header is a copy of m's with that context added.
func inject(ctx context.Context, prop propagation.TextMapPropagator, m *mq.Message) *mq.Message {
	var kv pairs
	prop.Inject(ctx, &kv)
	if len(kv) == 0 {
		return m
	}
	c := *m
	c.Header = make(map[string]string, len(m.Header)+len(kv)/2)
	maps.Copy(c.Header, m.Header)
	for i := 0; i+1 < len(kv); i += 2 {
		c.Header[kv[i]] = kv[i+1]
	}
	return &c
}

// pairs is a write-only propagation.TextMapCarrier collecting key, value
// pairs, so that injecting nothing costs nothing.
type pairs []string

func (p *pairs) Get(string) string { return "" }

func (p *pairs) Set(k, v string) { *p = append(*p, k, v) }

func (p *pairs) Keys() []string { return nil }
