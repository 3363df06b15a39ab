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
		Restart: func(t testing.TB) { rabbitmqtest.Restart(t) },
		Timeout: 30 * time.Second,
	})
}
