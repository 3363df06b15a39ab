package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/kafka"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// TestConformance runs the whole conformance suite against the real Kafka
// broker (kafkatest), including the broker-restart case.
//
// Every connection of the brokers Open and OpenNoProvision make goes
// through a TCP proxy for its target (Harness.Network), so the network
// cases can stall and reset them.
func TestConformance(t *testing.T) {
	url := testURL(t, "")
	network := newProxyNetwork(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return kafka.OpenDialing(ctx, url, network.dial)
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return kafka.OpenDialing(ctx, url+"?provision=false", network.dial)
		},
		Network:        network,
		Restart:        func(t testing.TB) { kafkatest.Restart(t) },
		PublishForeign: foreignPublisher(t),
		Timeout:        60 * time.Second,
	})
}
