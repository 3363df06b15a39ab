package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// TestConformance runs the whole conformance suite against the RabbitMQ
// from rabbitmqtest (scripts/brokers, or a container), with the default
// settings: quorum queues, fanout exchanges, provisioning on (plus
// queue_expires, so the shared test broker sheds old test queues).
func TestConformance(t *testing.T) {
	base := rabbitmqtest.URL(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, withQuery(t, base, ""))
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, withQuery(t, base, "provision=false"))
		},
		Restart:        func(t testing.TB) { rabbitmqtest.Restart(t) },
		PublishForeign: foreignPublisher(t),
		Timeout:        30 * time.Second,
	})
}

// TestConformanceClassicTopic runs the suite again with classic queues
// bound to topic exchanges, the other main configuration. The broker
// restart case runs in TestConformance only (Restart is nil here).
func TestConformanceClassicTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: TestConformance covers the default configuration")
	}
	base := rabbitmqtest.URL(t)
	const query = "queue_type=classic&exchange_type=topic"
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, withQuery(t, base, query))
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, withQuery(t, base, query+"&provision=false"))
		},
		PublishForeign: foreignPublisher(t),
		Timeout:        30 * time.Second,
	})
}
