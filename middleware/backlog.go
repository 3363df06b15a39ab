package middleware

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/seedmq/mq"
)

// MetricBacklog is the backlog ObserveBacklog reports: the messages a
// group has not acknowledged yet on a topic, as mq.BacklogOf counts them
// (Int64ObservableGauge, "{message}").
const MetricBacklog = "mq.backlog"

// BacklogTarget names one group of one topic whose backlog to observe.
type BacklogTarget struct {
	Topic string
	Group string
}

// BacklogOptions configures ObserveBacklog.
type BacklogOptions struct {
	// MeterProvider creates the gauge. Default otel.GetMeterProvider(),
	// the global provider.
	MeterProvider metric.MeterProvider

	// System is the messaging.system attribute (see SystemOf). Default:
	// empty, and the attribute is left out.
	System string

	// Timeout bounds each reading, which asks the broker. Default 5s.
	Timeout time.Duration

	// Partitions reports one point per partition, with the
	// messaging.destination.partition.id attribute, on brokers that have
	// partitions (Kafka). Default false: one point per target, the sum.
	Partitions bool
}

// ObserveBacklog registers the MetricBacklog gauge, which reads the
// backlog of each target from b (through mq.BacklogOf, so b may be any
// wrapper of a broker) whenever the meter provider collects, with the
// attributes messaging.system (when System is set),
// messaging.destination.name and messaging.consumer.group.name. A target
// whose reading fails (a missing group, a broker that cannot tell, a
// timeout) has no point in that collection, and the error goes to
// otel.Handle. The returned function unregisters the gauge.
//
// Each collection makes one request per target (a few for Kafka), from
// the collecting goroutine: keep targets few and the collection interval
// in seconds.
func ObserveBacklog(b any, targets []BacklogTarget, o BacklogOptions) (unregister func() error, err error) {
	mp := o.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	m := mp.Meter(instrumentation, metric.WithSchemaURL(semconv.SchemaURL))
	g, err := m.Int64ObservableGauge(MetricBacklog, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages a consumer group has not acknowledged yet."))
	if err != nil {
		return nil, err
	}
	targets = append([]BacklogTarget(nil), targets...)
	reg, err := m.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		for _, tg := range targets {
			rctx, cancel := context.WithTimeout(ctx, o.Timeout)
			bl, err := mq.BacklogOf(rctx, b, tg.Topic, tg.Group)
			cancel()
			if err != nil {
				otel.Handle(err)
				continue
			}
			attrs := make([]attribute.KeyValue, 0, 4)
			if o.System != "" {
				attrs = append(attrs, semconv.MessagingSystemKey.String(o.System))
			}
			attrs = append(attrs, semconv.MessagingDestinationName(tg.Topic), semconv.MessagingConsumerGroupName(tg.Group))
			if !o.Partitions || bl.Partitions == nil {
				obs.ObserveInt64(g, bl.Messages, metric.WithAttributes(attrs...))
				continue
			}
			for _, p := range bl.Partitions {
				pa := append(attrs[:len(attrs):len(attrs)], semconv.MessagingDestinationPartitionID(strconv.Itoa(p.Partition)))
				obs.ObserveInt64(g, p.Lag, metric.WithAttributes(pa...))
			}
		}
		return nil
	}, g)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
