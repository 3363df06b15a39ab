package middleware_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

// recorder returns tracing options recording every span in sr.
func recorder(t *testing.T) (middleware.TracingOptions, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return middleware.TracingOptions{TracerProvider: tp, Propagator: propagation.TraceContext{}, System: "memory"}, sr
}

// spanNamed returns the ended span with that name, failing if there is
// not exactly one.
func spanNamed(t *testing.T, sr *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("got %d ended spans named %q, want 1", len(found), name)
	}
	return found[0]
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTracingAcrossTheBroker(t *testing.T) {
	o, sr := recorder(t)
	b := newBroker(t)
	topic := topicFor(t)
	w := middleware.WrapBroker(b, middleware.TracingPublisher(o), middleware.Tracing(o))
	in := newInbox()
	subscribe(t, w, topic, "g", in.handler(func(ctx context.Context, m *mq.Message) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return errors.New("handler ctx has no span")
		}
		return nil
	}))

	ctx, root := o.TracerProvider.Tracer("test").Start(context.Background(), "root")
	msg := &mq.Message{Body: []byte("hello"), Header: map[string]string{"h": "v"}}
	if err := w.Publish(ctx, topic, msg); err != nil {
		t.Fatalf("Publish: got %v, want nil", err)
	}
	root.End()
	got := in.waitFor(t, 1)[0]
	if _, ok := msg.Header["traceparent"]; ok {
		t.Errorf("the caller's message got a traceparent header; want it unchanged")
	}
	if got.Header["traceparent"] == "" || got.Header["h"] != "v" {
		t.Errorf("got delivered headers %v, want traceparent and h=v", got.Header)
	}
	waitSpans(t, sr, 3)

	send := spanNamed(t, sr, "send "+topic)
	process := spanNamed(t, sr, "process "+topic)
	if send.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("send span parent: got %v, want the caller's span %v", send.Parent().SpanID(), root.SpanContext().SpanID())
	}
	if send.SpanKind() != trace.SpanKindProducer || process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kinds: got send %v process %v, want producer and consumer", send.SpanKind(), process.SpanKind())
	}
	if process.Parent().SpanID() != send.SpanContext().SpanID() || process.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("process span: got parent %v trace %v, want parent %v (the send span) in trace %v",
			process.Parent().SpanID(), process.SpanContext().TraceID(), send.SpanContext().SpanID(), root.SpanContext().TraceID())
	}
	wantSend := map[attribute.Key]attribute.Value{
		"messaging.system":            attribute.StringValue("memory"),
		"messaging.destination.name":  attribute.StringValue(topic),
		"messaging.operation.type":    attribute.StringValue("send"),
		"messaging.operation.name":    attribute.StringValue("send"),
		"messaging.message.id":        attribute.StringValue(msg.ID),
		"messaging.message.body.size": attribute.IntValue(5),
	}
	checkAttrs(t, "send", attrs(send), wantSend)
	wantProcess := map[attribute.Key]attribute.Value{
		"messaging.system":                  attribute.StringValue("memory"),
		"messaging.destination.name":        attribute.StringValue(topic),
		"messaging.consumer.group.name":     attribute.StringValue("g"),
		"messaging.operation.type":          attribute.StringValue("process"),
		"messaging.operation.name":          attribute.StringValue("process"),
		"messaging.message.id":              attribute.StringValue(msg.ID),
		"messaging.message.body.size":       attribute.IntValue(5),
		attribute.Key("mq.message.attempt"): attribute.IntValue(1),
	}
	checkAttrs(t, "process", attrs(process), wantProcess)
	if process.Status().Code != codes.Unset {
		t.Errorf("process span status: got %v, want Unset", process.Status())
	}
}

func checkAttrs(t *testing.T, span string, got, want map[attribute.Key]attribute.Value) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s span attribute %s: got %v, want %v", span, k, got[k].Emit(), v.Emit())
		}
	}
}

// waitSpans waits until sr holds at least n ended spans. Spans end after
// the handler returns, so the test cannot wait on the handler alone.
func waitSpans(t *testing.T, sr *tracetest.SpanRecorder, n int) {
	t.Helper()
	waitUntil(t, func() bool { return len(sr.Ended()) >= n }, func() string {
		return "ended spans: " + itoa(len(sr.Ended())) + ", want " + itoa(n)
	})
}

func TestTracingRecordsErrors(t *testing.T) {
	o, sr := recorder(t)
	h := middleware.Tracing(o)(func(context.Context, *mq.Message) error { return mq.Permanent(errBoom) })
	err := h(context.Background(), &mq.Message{ID: "x", Topic: "t", Group: "g", Attempt: 2})
	if !errors.Is(err, errBoom) {
		t.Fatalf("got %v, want the handler's error", err)
	}
	s := spanNamed(t, sr, "process t")
	if s.Status().Code != codes.Error {
		t.Errorf("status: got %v, want Error", s.Status())
	}
	if got := attrs(s)["error.type"]; got.AsString() != "permanent" {
		t.Errorf("error.type: got %q, want permanent", got.Emit())
	}
	if len(s.Events()) != 1 || s.Events()[0].Name != "exception" {
		t.Errorf("events: got %v, want one exception event", s.Events())
	}
	if s.Parent().IsValid() {
		t.Errorf("a message without trace headers got parent %v, want a root span", s.Parent())
	}
}

func TestTracingPublisherBatch(t *testing.T) {
	o, sr := recorder(t)
	b := newBroker(t)
	topic := topicFor(t)
	p := middleware.WrapPublisher(b, middleware.TracingPublisher(o))
	in := newInbox()
	subscribe(t, b, topic, "g", in.handler(nil))
	msgs := []*mq.Message{mq.NewMessage([]byte("a")), mq.NewMessage([]byte("b")), mq.NewMessage([]byte("c"))}
	publish(t, p, topic, msgs...)
	got := in.waitFor(t, 3)

	send := spanNamed(t, sr, "send "+topic)
	if send.SpanKind() != trace.SpanKindClient {
		t.Errorf("batch send span kind: got %v, want client", send.SpanKind())
	}
	if n := attrs(send)["messaging.batch.message_count"]; n.AsInt64() != 3 {
		t.Errorf("messaging.batch.message_count: got %v, want 3", n.Emit())
	}
	creates := map[trace.SpanID]string{}
	for _, s := range sr.Ended() {
		if s.Name() == "create "+topic {
			creates[s.SpanContext().SpanID()] = attrs(s)["messaging.message.id"].AsString()
		}
	}
	if len(creates) != 3 || len(send.Links()) != 3 {
		t.Fatalf("got %d create spans and %d links, want 3 and 3", len(creates), len(send.Links()))
	}
	for _, l := range send.Links() {
		if _, ok := creates[l.SpanContext.SpanID()]; !ok {
			t.Errorf("send span links %v, which is no create span", l.SpanContext.SpanID())
		}
	}
	// Each message carries its own create span's context.
	prop := propagation.TraceContext{}
	for _, m := range got {
		sc := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier(m.Header)))
		if id := creates[sc.SpanID()]; id != m.ID {
			t.Errorf("message %q carries span %v of message %q, want its own create span", m.ID, sc.SpanID(), id)
		}
	}
}

func TestTracingPublisherNoContext(t *testing.T) {
	// With nothing to inject (no span in ctx, noop tracer), the driver gets
	// the caller's message itself: no copy.
	b := newBroker(t)
	var seen *mq.Message
	spy := func(next middleware.PublishFunc) middleware.PublishFunc {
		return func(ctx context.Context, topic string, msgs ...*mq.Message) error {
			seen = msgs[0]
			return next(ctx, topic, msgs...)
		}
	}
	o := middleware.TracingOptions{TracerProvider: tracenoop.NewTracerProvider(), Propagator: propagation.TraceContext{}}
	p := middleware.WrapPublisher(b, middleware.TracingPublisher(o), spy)
	m := mq.NewMessage([]byte("x"))
	publish(t, p, topicFor(t), m)
	if seen != m {
		t.Errorf("driver got a copy, want the caller's message when there is no context to inject")
	}
	if m.ID == "" {
		t.Errorf("ID is empty, want it filled")
	}
}

func TestTracingPanic(t *testing.T) {
	o, sr := recorder(t)
	h := middleware.Tracing(o)(func(context.Context, *mq.Message) error { panic("kaput") })
	func() {
		defer func() {
			if p := recover(); p != "kaput" {
				t.Errorf("got panic %v, want it passed on", p)
			}
		}()
		_ = h(context.Background(), &mq.Message{Topic: "t"})
	}()
	s := spanNamed(t, sr, "process t")
	if s.Status().Code != codes.Error || s.Status().Description != "panic: kaput" {
		t.Errorf("status: got %v, want Error with the panic", s.Status())
	}
}
