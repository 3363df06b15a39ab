package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
	"github.com/seedmq/mq/middleware"
)

// The middleware cases check that package middleware's dead-lettering,
// redrive, tracing and metrics work on the driver under test: they rely on
// the driver's attempt counts, header round trips and redelivery, so a
// driver can break them even though the middleware itself is portable.
func init() {
	register(
		testCase{name: "mw-dead-letter-max-attempts", run: mwDeadLetterMaxAttempts},
		testCase{name: "mw-dead-letter-permanent", run: mwDeadLetterPermanent},
		testCase{name: "mw-dead-letter-publish-fails", run: mwDeadLetterPublishFails},
		testCase{name: "mw-redrive", run: mwRedrive},
		testCase{name: "mw-trace-propagation", run: mwTracePropagation},
		testCase{name: "mw-metrics", run: mwMetrics},
	)
}

// mwBackoff redelivers failed messages soon, so the cases reach the last
// attempt quickly on every broker.
var mwBackoff = constantBackoff(50 * time.Millisecond)

// deadLetterSetup provisions the case topic with the case group and its
// dead-letter topic with a group of its own, and subscribes a collector to
// the dead-letter topic on a separate connection. It returns the
// dead-letter topic and collector.
func deadLetterSetup(t *testing.T, e *env, b mq.Broker) (string, *collector) {
	t.Helper()
	dlq := middleware.DeadLetterTopic(e.topic)
	dlqGroup := e.newGroup()
	e.provision(t, b, e.topic, e.group)
	e.provision(t, b, dlq, dlqGroup)
	dc := newCollector()
	e.subscribe(t, e.open(t), dlq, dc.handler(1, nil), mq.Group(dlqGroup))
	return dlq, dc
}

// checkDeadLetter checks that the dead letter of orig, as delivered from
// the dead-letter topic, is a faithful copy with the headers DeadLetter
// promises.
func checkDeadLetter(t *testing.T, e *env, got *mq.Message, orig *mq.Message, attempts int, reason, errText string) {
	t.Helper()
	if got.ID != orig.ID || got.Key != orig.Key || string(got.Body) != string(orig.Body) {
		t.Errorf("dead letter: got ID %q Key %q Body %q, want %q %q %q", got.ID, got.Key, got.Body, orig.ID, orig.Key, orig.Body)
	}
	for k, v := range orig.Header {
		if got.Header[k] != v {
			t.Errorf("dead letter header %q: got %q, want the original %q", k, got.Header[k], v)
		}
	}
	want := map[string]string{
		middleware.HeaderTopic:    e.topic,
		middleware.HeaderGroup:    e.group,
		middleware.HeaderAttempts: strconv.Itoa(attempts),
		middleware.HeaderReason:   reason,
	}
	for k, v := range want {
		if got.Header[k] != v {
			t.Errorf("dead letter header %q: got %q, want %q", k, got.Header[k], v)
		}
	}
	if e := got.Header[middleware.HeaderError]; !strings.Contains(e, errText) {
		t.Errorf("dead letter header %q: got %q, want it to contain %q", middleware.HeaderError, e, errText)
	}
	at, err := time.Parse(time.RFC3339Nano, got.Header[middleware.HeaderTime])
	if err != nil || time.Since(at) > time.Hour || time.Until(at) > time.Minute {
		t.Errorf("dead letter header %q: got %q (%v), want the RFC 3339 time of dead-lettering", middleware.HeaderTime, got.Header[middleware.HeaderTime], err)
	}
}

// mwDeadLetterMaxAttempts: a message that always fails is handled
// MaxAttempts times (broker attempts 1, 2, 3), then published to the
// dead-letter topic with headers naming its source, and never redelivered
// from the source again.
func mwDeadLetterMaxAttempts(t *testing.T, e *env) {
	b := e.open(t)
	dlq, dc := deadLetterSetup(t, e, b)
	c := newCollector()
	dl := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 3})
	e.sub(t, b, dl(c.handler(0, func(context.Context, *mq.Message) error { return errNack })), mwBackoff)

	orig := &mq.Message{Key: "k", Body: []byte("poison\x00"), Header: map[string]string{"origin": "ünïcode"}}
	e.publish(t, b, e.topic, orig)
	e.awaitAcked(t, dc, "the dead letter in "+dlq, []string{orig.ID})
	if got := c.attempts(orig.ID); len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Errorf("source attempts: got %v, want [1 2 3]", got)
	}
	checkDeadLetter(t, e, dc.deliveries(orig.ID)[0].msg, orig, 3, middleware.ReasonMaxAttempts, errNack.Error())
	e.never(t, c, "the source redelivered a message after it was dead-lettered", func() bool { return c.count(orig.ID) > 3 })
}

// mwDeadLetterPermanent: a Permanent error dead-letters at once.
func mwDeadLetterPermanent(t *testing.T, e *env) {
	b := e.open(t)
	_, dc := deadLetterSetup(t, e, b)
	c := newCollector()
	dl := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 5})
	e.sub(t, b, dl(c.handler(0, func(context.Context, *mq.Message) error {
		return mq.Permanent(errors.New("unparseable order"))
	})), mwBackoff)
	orig := &mq.Message{Body: []byte("{"), Header: map[string]string{"h": "v"}}
	e.publish(t, b, e.topic, orig)
	e.awaitAcked(t, dc, "the dead letter", []string{orig.ID})
	checkDeadLetter(t, e, dc.deliveries(orig.ID)[0].msg, orig, 1, middleware.ReasonPermanent, "unparseable order")
	e.never(t, c, "a Permanent failure was redelivered after dead-lettering", func() bool { return c.count(orig.ID) > 1 })
}

// failingPublisher fails its first n Publish calls with a retryable error,
// then publishes to the real broker: a dead-letter topic that is briefly
// unavailable.
type failingPublisher struct {
	mq.Publisher
	failures atomic.Int32
}

func (p *failingPublisher) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if p.failures.Add(-1) >= 0 {
		return driver.Retryable(errors.New("conformance: dead-letter topic unavailable"))
	}
	return p.Publisher.Publish(ctx, topic, msgs...)
}

// mwDeadLetterPublishFails: while the dead-letter publish fails, the
// original is not acknowledged, so the broker redelivers it (nothing is
// lost); once the publish succeeds it is dead-lettered, after the attempt
// that succeeded.
func mwDeadLetterPublishFails(t *testing.T, e *env) {
	b := e.open(t)
	_, dc := deadLetterSetup(t, e, b)
	fp := &failingPublisher{Publisher: b}
	fp.failures.Store(2)
	c := newCollector()
	dl := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: fp, MaxAttempts: 2})
	e.sub(t, b, dl(c.handler(0, func(context.Context, *mq.Message) error { return errNack })), mwBackoff)
	orig := &mq.Message{Key: "k", Body: []byte("precious"), Header: map[string]string{"h": "v"}}
	e.publish(t, b, e.topic, orig)
	e.awaitAcked(t, dc, "the dead letter, once the dead-letter topic is back", []string{orig.ID})
	// Attempt 2 and 3 tried to dead-letter and failed; attempt 4's publish
	// succeeded.
	if got := c.attempts(orig.ID); len(got) != 4 || got[3] != 4 {
		t.Errorf("source attempts: got %v, want [1 2 3 4]", got)
	}
	checkDeadLetter(t, e, dc.deliveries(orig.ID)[0].msg, orig, 4, middleware.ReasonMaxAttempts, errNack.Error())
	e.never(t, c, "the source redelivered a message after it was dead-lettered", func() bool { return c.count(orig.ID) > 4 })
}

// mwRedrive: Redrive moves the dead letters Filter selects back to their
// source topic with their original headers, leaves the others, and moves
// those on a later run.
func mwRedrive(t *testing.T, e *env) {
	b := e.open(t)
	dlq := middleware.DeadLetterTopic(e.topic)
	dlqGroup := e.newGroup()
	e.provision(t, b, e.topic, e.group)
	e.provision(t, b, dlq, dlqGroup)
	var fail atomic.Bool
	fail.Store(true)
	c := newCollector()
	dl := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b})
	// The collector is outside DeadLetter: a run that dead-lettered its
	// message is acknowledged once the dead letter was published.
	e.sub(t, b, c.handler(0, dl(func(context.Context, *mq.Message) error {
		if fail.Load() {
			return mq.Permanent(errNack)
		}
		return nil
	})), mwBackoff)
	msgs := []*mq.Message{
		{Key: "a", Body: []byte("one"), Header: map[string]string{"keep": "1"}},
		{Key: "b", Body: []byte("two"), Header: map[string]string{"keep": "2"}},
	}
	e.publish(t, b, e.topic, msgs...)
	e.awaitAcked(t, c, "both messages dead-lettered", ids(msgs))
	fail.Store(false)

	ctx := e.ctx(t)
	rb := e.open(t)
	n, err := middleware.Redrive(ctx, rb, dlq, middleware.RedriveOptions{
		Group: dlqGroup, Filter: func(m *mq.Message) bool { return m.Key == "b" }, Limit: 1, Idle: e.timeout,
	})
	if n != 1 || err != nil {
		t.Fatalf("Redrive with a filter: got %d, %v; want 1, nil", n, err)
	}
	moved := mwAwaitRedriven(t, e, c, msgs[1])
	if c.count(msgs[0].ID) != 1 {
		t.Errorf("the message Filter rejected was redriven: got %d deliveries, want 1", c.count(msgs[0].ID))
	}
	if moved.Attempt != 1 {
		t.Errorf("redriven message: got Attempt %d, want 1", moved.Attempt)
	}

	// A second run, with a fresh connection, finds the one left behind.
	n, err = middleware.Redrive(e.ctx(t), e.open(t), dlq, middleware.RedriveOptions{Group: dlqGroup, Limit: 1, Idle: e.timeout})
	if n != 1 || err != nil {
		t.Fatalf("second Redrive: got %d, %v; want 1, nil", n, err)
	}
	mwAwaitRedriven(t, e, c, msgs[0])
}

// mwAwaitRedriven waits for the redriven copy of orig to be acknowledged,
// checks it, and returns it. Redrive gives it a new ID (brokers that
// deduplicate by ID would drop the old one) and records the original in
// a header.
func mwAwaitRedriven(t *testing.T, e *env, c *collector, orig *mq.Message) *mq.Message {
	t.Helper()
	var got *mq.Message
	e.await(t, c, "the redriven copy of "+orig.ID+" to be acknowledged", func() bool {
		for _, r := range c.all() {
			if r.msg.Header[middleware.HeaderOriginalID] == orig.ID && r.done && r.err == nil {
				got = r.msg
				return true
			}
		}
		return false
	})
	want := map[string]string{middleware.HeaderOriginalID: orig.ID}
	for k, v := range orig.Header {
		want[k] = v
	}
	if len(got.Header) != len(want) {
		t.Errorf("redriven message: got headers %v, want %v", got.Header, want)
	}
	for k, v := range want {
		if got.Header[k] != v {
			t.Errorf("redriven message header %q: got %q, want %q", k, got.Header[k], v)
		}
	}
	if got.ID == orig.ID || got.Key != orig.Key || string(got.Body) != string(orig.Body) {
		t.Errorf("redriven message: got ID %q Key %q Body %q, want a new ID and %q %q", got.ID, got.Key, got.Body, orig.Key, orig.Body)
	}
	return got
}

// mwTracePropagation: the process span of a delivery is a child of the
// publish span, across the broker, in the publisher's trace, with the
// messaging attributes; a failed run is recorded on its span.
func mwTracePropagation(t *testing.T, e *env) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	o := middleware.TracingOptions{TracerProvider: tp, Propagator: propagation.TraceContext{}, System: "conformance"}

	pub := e.open(t)
	sub := e.open(t)
	e.provision(t, pub, e.topic, e.group)
	p := middleware.WrapPublisher(pub, middleware.TracingPublisher(o))
	c := newCollector()
	e.sub(t, sub, middleware.Tracing(o)(c.handler(0, func(ctx context.Context, m *mq.Message) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return mq.Permanent(errors.New("the handler's ctx carries no span"))
		}
		if m.Attempt == 1 {
			return errNack // one failed run, recorded on its span
		}
		return nil
	})), mwBackoff)

	ctx, root := tp.Tracer("conformance").Start(e.ctx(t), "root")
	msg := &mq.Message{Body: []byte("traced"), Header: map[string]string{"h": "v"}}
	if err := p.Publish(ctx, e.topic, msg); err != nil {
		t.Fatalf("Publish: got %v, want nil", err)
	}
	root.End()
	e.awaitAcked(t, c, "the traced message", []string{msg.ID})
	process := func() []sdktrace.ReadOnlySpan { return spansNamed(sr, "process "+e.topic) }
	e.eventually(t, "two process spans to end", func() bool { return len(process()) == 2 })

	sends := spansNamed(sr, "send "+e.topic)
	if len(sends) != 1 {
		t.Fatalf("got %d send spans, want 1", len(sends))
	}
	send := sends[0]
	if send.SpanKind() != trace.SpanKindProducer || send.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("send span: got kind %v parent %v, want producer, child of the caller's span", send.SpanKind(), send.Parent().SpanID())
	}
	for i, s := range process() {
		if s.Parent().SpanID() != send.SpanContext().SpanID() || s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("process span %d: got parent %v in trace %v, want the send span %v in trace %v",
				i, s.Parent().SpanID(), s.SpanContext().TraceID(), send.SpanContext().SpanID(), root.SpanContext().TraceID())
		}
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span %d: got kind %v, want consumer", i, s.SpanKind())
		}
		attempt := spanAttr(s, "mq.message.attempt").AsInt64()
		want := map[attribute.Key]attribute.Value{
			"messaging.system":              attribute.StringValue("conformance"),
			"messaging.destination.name":    attribute.StringValue(e.topic),
			"messaging.consumer.group.name": attribute.StringValue(e.group),
			"messaging.operation.type":      attribute.StringValue("process"),
			"messaging.message.id":          attribute.StringValue(msg.ID),
			"messaging.message.body.size":   attribute.IntValue(len(msg.Body)),
		}
		for k, v := range want {
			if got := spanAttr(s, k); got != v {
				t.Errorf("process span (attempt %d) attribute %s: got %q, want %q", attempt, k, got.Emit(), v.Emit())
			}
		}
		failed := s.Status().Description != ""
		if (attempt == 1) != failed {
			t.Errorf("process span of attempt %d: got status %v, want an error only on attempt 1", attempt, s.Status())
		}
	}
}

func spansNamed(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// mwMetrics: published, processed, failed and dead-lettered counts, the
// duration histogram and the in-flight gauge, read with a manual reader.
func mwMetrics(t *testing.T, e *env) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	o := middleware.MetricsOptions{MeterProvider: mp}

	b := e.open(t)
	deadLetterSetup(t, e, b)
	p := middleware.WrapPublisher(b, middleware.MetricsPublisher(o))
	c := newCollector()
	stack := middleware.Chain(middleware.Metrics(o), middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b}))
	e.sub(t, b, stack(c.handler(0, func(_ context.Context, m *mq.Message) error {
		switch string(m.Body) {
		case "poison":
			return mq.Permanent(errNack)
		case "flaky":
			if m.Attempt == 1 {
				return errNack
			}
		}
		return nil
	})), mwBackoff)
	msgs := []*mq.Message{mq.NewMessage([]byte("ok")), mq.NewMessage([]byte("flaky")), mq.NewMessage([]byte("poison"))}
	e.publish(t, p, e.topic, msgs...)
	e.await(t, c, "4 handler runs to finish", func() bool {
		return c.acks(msgs[0].ID) == 1 && c.acks(msgs[1].ID) == 1 && c.count(msgs[2].ID) == 1
	})
	want := map[string]float64{
		middleware.MetricPublished:    3,
		middleware.MetricProcessed:    4,
		middleware.MetricFailed:       1,
		middleware.MetricDeadLettered: 1,
		middleware.MetricDuration:     4,
		middleware.MetricInFlight:     0,
	}
	// Metrics records its instruments one after another just after the
	// handler returns, so a collection can fall between two of them: poll
	// the reader until every instrument has its final value (a wrong
	// value never settles, and the failure lists it).
	mismatches := func() string {
		got := collectMetrics(t, r, e.topic)
		var out string
		for name, v := range want {
			if got[name] != v {
				out += fmt.Sprintf("; %s: got %v, want %v", name, got[name], v)
			}
		}
		return out
	}
	e.awaitFor(t, e.timeout, nil, "every metric to reach its expected value", func() bool { return mismatches() == "" }, mismatches)
}

// collectMetrics sums each instrument's points for topic (histograms by
// count).
func collectMetrics(t *testing.T, r *sdkmetric.ManualReader, topic string) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("metric reader Collect: %v", err)
	}
	dest := attribute.String("messaging.destination.name", topic)
	match := func(s attribute.Set) bool {
		v, ok := s.Value(dest.Key)
		return ok && v == dest.Value
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						out[m.Name] += float64(p.Value)
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						out[m.Name] += float64(p.Count)
					}
				}
			}
		}
	}
	return out
}
