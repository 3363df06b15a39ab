package sqs_test

import (
	"context"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/sqs/sqstest"
)

// TestConformance runs the conformance suite against ElasticMQ with
// standard queues, and again with every topic a FIFO queue (fifo=true),
// where OrderingByKey holds and DelayedDelivery does not.
func TestConformance(t *testing.T) {
	for _, mode := range []struct{ name, params string }{
		{"standard", ""},
		{"fifo", "&fifo=true"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			url := brokerURL(t) + mode.params
			conformance.Run(t, conformance.Harness{
				Open: func(ctx context.Context) (mq.Broker, error) { return mq.Open(ctx, url) },
				OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
					return mq.Open(ctx, url+"&provision=false")
				},
				Restart:        func(t testing.TB) { sqstest.Restart(t) },
				PublishForeign: foreignPublisher(t, mode.params != ""),
				Timeout:        60 * time.Second,
			})
		})
	}
}
