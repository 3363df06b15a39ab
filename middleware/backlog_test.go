package middleware_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/middleware"
)

func TestObserveBacklog(t *testing.T) {
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if err := mq.Provision(ctx, b, "orders", "billing", "shipping"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "orders", mq.NewMessage([]byte("1")), mq.NewMessage([]byte("2"))); err != nil {
		t.Fatal(err)
	}
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(ctx)
	unregister, err := middleware.ObserveBacklog(b, []middleware.BacklogTarget{
		{Topic: "orders", Group: "billing"},
		{Topic: "orders", Group: "missing"}, // no point, no failure
	}, middleware.BacklogOptions{MeterProvider: mp, System: "memory"})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		if err := r.Collect(ctx, &rm); err != nil {
			t.Fatalf("Collect: %v", err)
		}
		out := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != middleware.MetricBacklog {
					continue
				}
				for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
					g, _ := p.Attributes.Value(attribute.Key("messaging.consumer.group.name"))
					sys, _ := p.Attributes.Value(attribute.Key("messaging.system"))
					topic, _ := p.Attributes.Value(attribute.Key("messaging.destination.name"))
					if sys.AsString() != "memory" || topic.AsString() != "orders" {
						t.Errorf("point attributes %v: want messaging.system memory, destination orders", p.Attributes)
					}
					out[g.AsString()] = p.Value
				}
			}
		}
		return out
	}
	if got := gauge(); len(got) != 1 || got["billing"] != 2 {
		t.Errorf("backlog gauge: got %v, want billing=2 only", got)
	}
	if err := b.Publish(ctx, "orders", mq.NewMessage([]byte("3"))); err != nil {
		t.Fatal(err)
	}
	if got := gauge(); got["billing"] != 3 {
		t.Errorf("backlog gauge after a publish: got %v, want billing=3", got)
	}
	if err := unregister(); err != nil {
		t.Fatal(err)
	}
	if got := gauge(); len(got) != 0 {
		t.Errorf("backlog gauge after unregister: got %v, want no point", got)
	}
}
