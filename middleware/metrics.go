package middleware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/seedmq/mq"
)

// Instrument names Metrics and MetricsPublisher record. The first three are
// the OpenTelemetry messaging conventions' own; the others have no
// convention yet and use the "mq." namespace.
const (
	// MetricPublished counts messages published (Int64Counter,
	// "{message}"); those whose Publish failed carry error.type.
	MetricPublished = "messaging.client.sent.messages"
	// MetricProcessed counts handler runs that finished, successful or not
	// (Int64Counter, "{message}"); failed ones carry error.type.
	MetricProcessed = "messaging.client.consumed.messages"
	// MetricDuration records how long each handler run took
	// (Float64Histogram, seconds); failed ones carry error.type.
	MetricDuration = "messaging.process.duration"
	// MetricFailed counts handler runs that returned an error, so that
	// the message is redelivered (Int64Counter, "{message}"), with
	// error.type. A run whose message a DeadLetter middleware inside Metrics
	// dead-lettered returned nil: it counts in MetricDeadLettered instead.
	MetricFailed = "mq.messages.failed"
	// MetricDeadLettered counts messages a DeadLetter middleware inside
	// Metrics moved to a dead-letter topic (Int64Counter, "{message}"),
	// with error.type of the handler error that caused it.
	MetricDeadLettered = "mq.messages.dead_lettered"
	// MetricInFlight is the number of handler runs in progress
	// (Int64UpDownCounter, "{message}").
	MetricInFlight = "mq.messages.in_flight"
)

// MetricsOptions configures Metrics and MetricsPublisher.
type MetricsOptions struct {
	// MeterProvider creates the instruments. Default
	// otel.GetMeterProvider(), the global provider.
	MeterProvider metric.MeterProvider

	// System is the messaging.system attribute (see SystemOf). Default:
	// empty, and the attribute is left out.
	System string
}

// instruments holds the instruments of one Metrics or MetricsPublisher.
type instruments struct {
	system    string
	published metric.Int64Counter
	processed metric.Int64Counter
	failed    metric.Int64Counter
	dead      metric.Int64Counter
	inFlight  metric.Int64UpDownCounter
	duration  metric.Float64Histogram

	attrs sync.Map              // attrKey -> *attrs
	last  atomic.Pointer[attrs] // the most recently used
}

type attrKey struct{ topic, group, op string }

// newInstruments creates the instruments. An error creating one (only a
// misbehaving MeterProvider returns one) leaves a no-op instrument in its
// place and is reported through otel.Handle, as OpenTelemetry
// instrumentation does.
func newInstruments(o MetricsOptions) *instruments {
	mp := o.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentation, metric.WithSchemaURL(semconv.SchemaURL))
	in := &instruments{system: o.System}
	var err error
	check := func() {
		if err != nil {
			otel.Handle(err)
		}
	}
	in.published, err = m.Int64Counter(MetricPublished, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages published."))
	check()
	in.processed, err = m.Int64Counter(MetricProcessed, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages whose handler finished, successfully or not."))
	check()
	in.failed, err = m.Int64Counter(MetricFailed, metric.WithUnit("{message}"),
		metric.WithDescription("Number of handler runs that returned an error."))
	check()
	in.dead, err = m.Int64Counter(MetricDeadLettered, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages moved to a dead-letter topic."))
	check()
	in.inFlight, err = m.Int64UpDownCounter(MetricInFlight, metric.WithUnit("{message}"),
		metric.WithDescription("Number of handler runs in progress."))
	check()
	in.duration, err = m.Float64Histogram(MetricDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of handler runs."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	check()
	return in
}

// attrs is the measurement options of one topic, group and operation.
type attrs struct {
	key attrKey
	add []metric.AddOption
	rec []metric.RecordOption
}

// set returns the options of a topic, group and operation. A subscription
// sees one topic and group, so the last one used is kept at hand; others
// are cached in a map. Handing the instruments prepared option slices
// avoids allocating on each measurement.
func (in *instruments) set(topic, group, op string) *attrs {
	k := attrKey{topic, group, op}
	if a := in.last.Load(); a != nil && a.key == k {
		return a
	}
	v, ok := in.attrs.Load(k)
	if !ok {
		o := metric.WithAttributeSet(attribute.NewSet(in.kvs(topic, group, op)...))
		v, _ = in.attrs.LoadOrStore(k, &attrs{key: k, add: []metric.AddOption{o}, rec: []metric.RecordOption{o}})
	}
	a := v.(*attrs)
	in.last.Store(a)
	return a
}

func (in *instruments) kvs(topic, group, op string) []attribute.KeyValue {
	a := make([]attribute.KeyValue, 0, 5)
	if in.system != "" {
		a = append(a, semconv.MessagingSystemKey.String(in.system))
	}
	a = append(a, semconv.MessagingDestinationName(topic), semconv.MessagingOperationName(op))
	if group != "" {
		a = append(a, semconv.MessagingConsumerGroupName(group))
	}
	return a
}

// withError returns the attributes of topic, group and op plus error.type.
func (in *instruments) withError(topic, group, op string, err error) metric.MeasurementOption {
	return metric.WithAttributes(append(in.kvs(topic, group, op), semconv.ErrorTypeKey.String(errorType(err)))...)
}

// Metrics returns middleware that records OpenTelemetry metrics for each
// handler run: MetricProcessed, MetricFailed, MetricDuration and
// MetricInFlight, and MetricDeadLettered for messages a DeadLetter
// middleware placed inside it dead-lettered. Attributes: messaging.system
// (when System is set), messaging.destination.name,
// messaging.consumer.group.name, messaging.operation.name "process", and
// error.type on failures. Place it outside DeadLetter and Retry so it
// measures whole deliveries.
func Metrics(o MetricsOptions) mq.Middleware {
	in := newInstruments(o)
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			a := in.set(m.Topic, m.Group, "process")
			ctx, p := observe(ctx)
			in.inFlight.Add(ctx, 1, a.add...)
			start := time.Now()
			defer func() {
				// A panic passing through is measured as a failure, and
				// leaves the in-flight gauge right.
				if r := recover(); r != nil {
					in.handled(ctx, m, a, p, since(start), fmt.Errorf("panic: %v", r))
					panic(r)
				}
			}()
			err := next(ctx, m)
			in.handled(ctx, m, a, p, since(start), err)
			return err
		}
	}
}

// handled records the end of one handler run.
func (in *instruments) handled(ctx context.Context, m *mq.Message, a *attrs, p *probe, elapsed float64, err error) {
	in.inFlight.Add(ctx, -1, a.add...)
	if err != nil {
		eattrs := in.withError(m.Topic, m.Group, "process", err)
		in.processed.Add(ctx, 1, eattrs)
		in.failed.Add(ctx, 1, eattrs)
		in.duration.Record(ctx, elapsed, eattrs)
		return
	}
	in.processed.Add(ctx, 1, a.add...)
	in.duration.Record(ctx, elapsed, a.rec...)
	if p.deadLettered {
		in.dead.Add(ctx, 1, in.withError(m.Topic, m.Group, "process", p.cause))
	}
}

// MetricsPublisher returns publisher middleware that counts published
// messages in MetricPublished, with messaging.destination.name,
// messaging.operation.name "send", and error.type for messages the broker
// did not accept (all of them when the whole call failed; those listed by
// a *mq.PublishError otherwise).
func MetricsPublisher(o MetricsOptions) PublisherMiddleware {
	in := newInstruments(o)
	return func(next PublishFunc) PublishFunc {
		return func(ctx context.Context, topic string, msgs ...*mq.Message) error {
			err := next(ctx, topic, msgs...)
			if err == nil {
				in.published.Add(ctx, int64(len(msgs)), in.set(topic, "", "send").add...)
				return nil
			}
			failed := len(msgs)
			var pe *mq.PublishError
			if errors.As(err, &pe) {
				failed = len(pe.Failures)
				for _, f := range pe.Failures {
					in.published.Add(ctx, 1, in.withError(topic, "", "send", f.Err))
				}
			} else {
				in.published.Add(ctx, int64(failed), in.withError(topic, "", "send", err))
			}
			if ok := len(msgs) - failed; ok > 0 {
				in.published.Add(ctx, int64(ok), in.set(topic, "", "send").add...)
			}
			return err
		}
	}
}
