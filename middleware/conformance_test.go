package middleware_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	_ "github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/middleware"
)

// TestConformanceWrapped runs the whole conformance suite on a memory
// broker wrapped with the middleware that only observe (tracing and
// metrics with recording SDKs, logging, recover, timeout): wrapping must
// not change any delivery semantics, capability or error a case checks.
// Left out: DeadLetter and Retry, since changing what a failure does is
// their purpose, and TracingPublisher, which adds a header the cases'
// exact header checks would see.
func TestConformanceWrapped(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	topts := middleware.TracingOptions{TracerProvider: tp, Propagator: propagation.TraceContext{}}
	mopts := middleware.MetricsOptions{MeterProvider: mp}
	quiet := slog.New(slog.DiscardHandler)
	wrap := func(b mq.Broker, err error) (mq.Broker, error) {
		if err != nil {
			return nil, err
		}
		return middleware.WrapBroker(b,
			middleware.MetricsPublisher(mopts),
			middleware.Chain(
				middleware.Tracing(topts),
				middleware.Metrics(mopts),
				middleware.Logging(middleware.LoggingOptions{Logger: quiet}),
				middleware.Recover(middleware.RecoverOptions{Logger: quiet}),
				middleware.Timeout(middleware.TimeoutOptions{}),
			)), nil
	}
	name := fmt.Sprintf("wrapped-%08x", rand.Uint32())
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return wrap(mq.Open(ctx, "mem://"+name))
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return wrap(mq.Open(ctx, "mem://"+name+"?provision=false"))
		},
		Timeout: 10 * time.Second,
	})
}
