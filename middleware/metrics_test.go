package middleware_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

// meter returns metrics options recording into a manual reader.
func meter(t *testing.T) (middleware.MetricsOptions, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return middleware.MetricsOptions{MeterProvider: mp, System: "memory"}, r
}

// point is one data point of a collected metric: its attributes and value.
type point struct {
	attrs attribute.Set
	value float64 // sum, gauge or histogram count
}

// collect returns every data point by instrument name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string][]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, float64(p.Value)})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, float64(p.Count)})
				}
			}
		}
	}
	return out
}

// total sums the points of name whose attributes include every one of
// want.
func total(points map[string][]point, name string, want ...attribute.KeyValue) float64 {
	var sum float64
	for _, p := range points[name] {
		ok := true
		for _, kv := range want {
			if v, found := p.attrs.Value(kv.Key); !found || v != kv.Value {
				ok = false
			}
		}
		if ok {
			sum += p.value
		}
	}
	return sum
}

func TestMetrics(t *testing.T) {
	o, r := meter(t)
	b := newBroker(t)
	topic := topicFor(t)
	p := middleware.WrapPublisher(b, middleware.MetricsPublisher(o))
	done := newInbox()
	stack := middleware.Chain(
		middleware.Metrics(o),
		middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b}),
	)
	subscribe(t, b, topic, "g", stack(func(ctx context.Context, m *mq.Message) error {
		defer done.handler(nil)(ctx, m)
		switch {
		case string(m.Body) == "poison":
			return mq.Permanent(errBoom)
		case string(m.Body) == "flaky" && m.Attempt == 1:
			return errBoom
		}
		return nil
	}), fast)
	publish(t, p, topic, mq.NewMessage([]byte("ok")), mq.NewMessage([]byte("flaky")), mq.NewMessage([]byte("poison")))
	done.waitFor(t, 4)
	// Handlers have returned; Metrics records right after. Wait for the
	// in-flight gauge to settle.
	var got map[string][]point
	waitUntil(t, func() bool {
		got = collect(t, r)
		return total(got, middleware.MetricProcessed) == 4 && total(got, middleware.MetricInFlight) == 0
	}, func() string { return "processed != 4 or in-flight != 0" })

	base := []attribute.KeyValue{
		attribute.String("messaging.system", "memory"),
		attribute.String("messaging.destination.name", topic),
	}
	group := attribute.String("messaging.consumer.group.name", "g")
	tests := []struct {
		name   string
		metric string
		attrs  []attribute.KeyValue
		want   float64
	}{
		{"published", middleware.MetricPublished, append(base, attribute.String("messaging.operation.name", "send")), 3},
		{"processed", middleware.MetricProcessed, append(base, group, attribute.String("messaging.operation.name", "process")), 4},
		{"processed with error", middleware.MetricProcessed, []attribute.KeyValue{attribute.String("error.type", "*errors.errorString")}, 1},
		{"failed", middleware.MetricFailed, append(base, group), 1},
		{"dead-lettered", middleware.MetricDeadLettered, []attribute.KeyValue{group, attribute.String("error.type", "permanent")}, 1},
		{"duration count", middleware.MetricDuration, append(base, group), 4},
		{"in flight", middleware.MetricInFlight, base, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v := total(got, tt.metric, tt.attrs...); v != tt.want {
				t.Errorf("%s%v: got %v, want %v (all points: %v)", tt.metric, tt.attrs, v, tt.want, got[tt.metric])
			}
		})
	}
}

func TestMetricsPublisherFailures(t *testing.T) {
	o, r := meter(t)
	b := newBroker(t)
	p := middleware.WrapPublisher(b, middleware.MetricsPublisher(o))
	b.InjectPublishErrors(errors.New("down"))
	err := p.Publish(context.Background(), topicFor(t), mq.NewMessage(nil), mq.NewMessage(nil))
	if err == nil {
		t.Fatal("Publish: got nil, want the injected error")
	}
	got := collect(t, r)
	if v := total(got, middleware.MetricPublished, attribute.String("error.type", "*errors.errorString")); v != 2 {
		t.Errorf("failed publishes: got %v, want 2 (points %v)", v, got[middleware.MetricPublished])
	}
}

func TestMetricsPanic(t *testing.T) {
	// A panic passing through counts as a failure and does not leave the
	// in-flight gauge raised.
	o, r := meter(t)
	h := middleware.Metrics(o)(func(context.Context, *mq.Message) error { panic("kaput") })
	func() {
		defer func() {
			if p := recover(); p != "kaput" {
				t.Errorf("got panic %v, want it passed on", p)
			}
		}()
		_ = h(context.Background(), &mq.Message{Topic: "t", Group: "g", Attempt: 1})
	}()
	got := collect(t, r)
	if v := total(got, middleware.MetricInFlight); v != 0 {
		t.Errorf("in flight after a panic: got %v, want 0", v)
	}
	if v := total(got, middleware.MetricFailed); v != 1 {
		t.Errorf("failed after a panic: got %v, want 1", v)
	}
}
