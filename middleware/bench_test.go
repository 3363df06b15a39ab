package middleware_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/middleware"
)

// benchCases are the middleware measured by BenchmarkMiddleware, each
// with no-op OpenTelemetry providers: the overhead a service pays when
// it has not installed an SDK (or samples the span out).
func benchCases(pub mq.Publisher) []struct {
	name string
	mw   mq.Middleware
} {
	topts := middleware.TracingOptions{TracerProvider: tracenoop.NewTracerProvider(), Propagator: propagation.TraceContext{}, System: "memory"}
	mopts := middleware.MetricsOptions{MeterProvider: metricnoop.NewMeterProvider(), System: "memory"}
	quiet := slog.New(slog.DiscardHandler)
	return []struct {
		name string
		mw   mq.Middleware
	}{
		{"none", nil},
		{"retry", middleware.Retry(middleware.RetryOptions{})},
		{"deadletter", middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: pub})},
		{"timeout", middleware.Timeout(middleware.TimeoutOptions{})},
		{"recover", middleware.Recover(middleware.RecoverOptions{Logger: quiet})},
		{"logging", middleware.Logging(middleware.LoggingOptions{Logger: quiet})},
		{"metrics-noop", middleware.Metrics(mopts)},
		{"tracing-noop", middleware.Tracing(topts)},
		{"tracing-global-unset", middleware.Tracing(middleware.TracingOptions{})},
		{"metrics-global-unset", middleware.Metrics(middleware.MetricsOptions{})},
		{"stack-noop", middleware.Chain(
			middleware.Tracing(topts),
			middleware.Metrics(mopts),
			middleware.Logging(middleware.LoggingOptions{Logger: quiet}),
			middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: pub}),
			middleware.Retry(middleware.RetryOptions{}),
			middleware.Recover(middleware.RecoverOptions{Logger: quiet}),
			middleware.Timeout(middleware.TimeoutOptions{}),
		)},
	}
}

// BenchmarkMiddleware measures each middleware's cost per message: "direct"
// calls the wrapped handler in a loop, with no broker; "memory" publishes
// and handles b.N messages through the memory driver, so the difference
// from "none/memory" is the middleware's share of a real round trip.
func BenchmarkMiddleware(b *testing.B) {
	broker, err := memory.New(context.Background(), memory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = broker.Close(context.Background()) })
	for _, bc := range benchCases(broker) {
		wrap := func(h mq.Handler) mq.Handler {
			if bc.mw == nil {
				return h
			}
			return bc.mw(h)
		}
		b.Run(bc.name+"/direct", func(b *testing.B) {
			h := wrap(func(context.Context, *mq.Message) error { return nil })
			m := &mq.Message{ID: "0190a8e2-0000-7000-8000-000000000000", Topic: "bench", Group: "g", Attempt: 1, Body: make([]byte, 64),
				Header: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := h(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/memory", func(b *testing.B) {
			topic := "bench-" + bc.name + "-" + itoa(b.N)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := broker.Provision(ctx, topic, "g"); err != nil {
				b.Fatal(err)
			}
			var handled atomic.Int64
			done := make(chan struct{})
			target := int64(b.N)
			h := wrap(func(context.Context, *mq.Message) error {
				if handled.Add(1) == target {
					close(done)
				}
				return nil
			})
			subDone := make(chan error, 1)
			go func() { subDone <- broker.Subscribe(ctx, topic, h, mq.Group("g"), mq.Concurrency(1)) }()
			body := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := broker.Publish(ctx, topic, &mq.Message{Body: body}); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-done:
			case <-time.After(time.Minute):
				b.Fatalf("handled %d of %d messages within a minute", handled.Load(), b.N)
			}
			b.StopTimer()
			cancel()
			<-subDone
		})
	}
}

// BenchmarkTracingPublisher measures TracingPublisher's cost per Publish of
// one message, with a no-op tracer, on a PublishFunc that does nothing.
func BenchmarkTracingPublisher(b *testing.B) {
	o := middleware.TracingOptions{TracerProvider: tracenoop.NewTracerProvider(), Propagator: propagation.TraceContext{}}
	publish := middleware.TracingPublisher(o)(func(context.Context, string, ...*mq.Message) error { return nil })
	m := &mq.Message{ID: "id", Body: make([]byte, 64)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := publish(ctx, "bench", m); err != nil {
			b.Fatal(err)
		}
	}
}
