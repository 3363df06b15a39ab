package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

// benchGroup is the consumer group every contender consumes with.
const benchGroup = "bench"

var topicSeq atomic.Int64

// topicMade, when not nil, is given each name freshTopic returns: tests
// set it to learn what a run created on a broker.
var topicMade func(topic string)

// freshTopic returns a topic name no earlier run used, valid on every
// broker (letters, digits and '-', at most 80 characters for SQS).
func freshTopic(prefix string) string {
	topic := fmt.Sprintf("mqb-%s-%s-%d", prefix, strconv.FormatInt(time.Now().UnixNano(), 36), topicSeq.Add(1))
	if topicMade != nil {
		topicMade(topic)
	}
	return topic
}

// openFunc opens an mq broker set up for a cell.
type openFunc func(ctx context.Context, c cell) (mq.Broker, error)

// deleteFunc deletes topic from a broker, with the queues and exchanges
// named after it: what a run created there (see run.Delete).
type deleteFunc func(ctx context.Context, topic string) error

// mqRun is an mq broker consuming one fresh topic.
type mqRun struct {
	b      mq.Broker
	topic  string
	del    deleteFunc // nil: nothing to delete (in-process brokers)
	cancel context.CancelFunc
	done   chan error
}

func (r *mqRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	msgs := make([]*mq.Message, len(bodies))
	for i, body := range bodies {
		m := &mq.Message{Body: body}
		if sent != 0 {
			m.Header = map[string]string{sentHeader: formatSent(sent)}
		}
		msgs[i] = m
	}
	return r.b.Publish(ctx, r.topic, msgs...)
}

func (r *mqRun) Close(ctx context.Context) error {
	err := r.b.Close(ctx)
	r.cancel()
	select {
	case serr := <-r.done:
		if serr != nil && !errors.Is(serr, mq.ErrClosed) && !errors.Is(serr, context.Canceled) && err == nil {
			err = fmt.Errorf("subscribe: %w", serr)
		}
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("subscribe did not return: %w", ctx.Err())
		}
	}
	return err
}

func (r *mqRun) Delete(ctx context.Context) error {
	if r.del == nil {
		return nil
	}
	return r.del(ctx, r.topic)
}

// mqContender measures mq over the broker open returns, wrapped by wrap
// when it is not nil; del deletes each run's topic afterwards.
func mqContender(name, role, note string, open openFunc, del deleteFunc, wrap func(mq.Broker) mq.Broker) contender {
	return contender{Name: name, Role: role, Note: note, Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
		b, err := open(ctx, c)
		if err != nil {
			return nil, err
		}
		if wrap != nil {
			b = wrap(b)
		}
		topic := freshTopic("mq")
		if err := mq.Provision(ctx, b, topic, benchGroup); err != nil {
			_ = b.Close(context.Background())
			return nil, fmt.Errorf("provision: %w", err)
		}
		sctx, cancel := context.WithCancel(context.Background())
		r := &mqRun{b: b, topic: topic, del: del, cancel: cancel, done: make(chan error, 1)}
		h := func(_ context.Context, m *mq.Message) error {
			recv(parseSent(m.Header[sentHeader]))
			return nil
		}
		go func() {
			r.done <- b.Subscribe(sctx, topic, h, mq.Group(benchGroup), mq.Concurrency(c.Conc))
		}()
		return r, nil
	}}
}

// quiet discards middleware logs (nothing fails in a benchmark; the
// Logging middleware still runs its checks on every message).
var quiet = slog.New(slog.DiscardHandler)

// stack wraps b with the recommended middleware stack of package
// middleware's documentation, publisher side included, with the given
// OpenTelemetry providers.
func stack(b mq.Broker, tracing middleware.TracingOptions, metrics middleware.MetricsOptions) mq.Broker {
	system := middleware.SystemOf(b)
	tracing.System, metrics.System = system, system
	handlers := middleware.Chain(
		middleware.Tracing(tracing),
		middleware.Metrics(metrics),
		middleware.Logging(middleware.LoggingOptions{Logger: quiet}),
		middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b}),
		middleware.Retry(middleware.RetryOptions{}),
		middleware.Recover(middleware.RecoverOptions{Logger: quiet}),
		middleware.Timeout(middleware.TimeoutOptions{}),
	)
	publish := middleware.ChainPublisher(middleware.TracingPublisher(tracing), middleware.MetricsPublisher(metrics))
	return middleware.WrapBroker(b, publish, handlers)
}

// stackNoop is the stack with OpenTelemetry's no-op providers: what a
// service pays before it installs an SDK.
func stackNoop(b mq.Broker) mq.Broker {
	return stack(b,
		middleware.TracingOptions{TracerProvider: tracenoop.NewTracerProvider(), Propagator: propagation.TraceContext{}},
		middleware.MetricsOptions{MeterProvider: metricnoop.NewMeterProvider()})
}

// discardExporter is a span exporter that drops what it is given, so the
// SDK does all its work (sampling, recording, batching) but nothing is
// sent anywhere.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// otelProviders are the SDK providers of the "mq+otel" contenders: every
// span sampled and batched to a discarding exporter, metrics aggregated by
// a manual reader that is never collected.
var (
	otelTracer = sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	otelMeter  = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
)

// stackOTel is the stack with the real OpenTelemetry SDK.
func stackOTel(b mq.Broker) mq.Broker {
	return stack(b,
		middleware.TracingOptions{TracerProvider: otelTracer, Propagator: propagation.TraceContext{}},
		middleware.MetricsOptions{MeterProvider: otelMeter})
}

// mqContenders returns mq, mq with the no-op middleware stack, mq with
// the OpenTelemetry SDK stack and the outbox contenders (outbox.go) over
// the brokers open returns, deleting each run's topic with del (nil for
// in-process brokers).
func mqContenders(note string, open openFunc, del deleteFunc) []contender {
	return append([]contender{
		mqContender("mq", "mq", note, open, del, nil),
		mqContender("mq+mw-noop", "", "mq as above, wrapped in the recommended middleware stack (Tracing, Metrics, Logging, DeadLetter, Retry, Recover, Timeout; TracingPublisher, MetricsPublisher) with no-op OpenTelemetry providers", open, del, stackNoop),
		mqContender("mq+mw-otel", "", "the same stack with the OpenTelemetry SDK: every span sampled, batched to a discarding exporter; metrics aggregated by a manual reader", open, del, stackOTel),
	}, outboxContenders(open, del)...)
}
