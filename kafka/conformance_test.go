package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// TestConformance runs the whole conformance suite against the real Kafka
// broker (kafkatest), including the broker-restart case.
func TestConformance(t *testing.T) {
	url := testURL(t, "")
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, url)
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, url+"?provision=false")
		},
		Restart:        func(t testing.TB) { kafkatest.Restart(t) },
		PublishForeign: foreignPublisher(t),
		Timeout:        60 * time.Second,
	})
}
