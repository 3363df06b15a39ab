package rabbitmq_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/internal/tcpproxy"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// TestConformance runs the whole conformance suite against the RabbitMQ
// from rabbitmqtest (scripts/brokers, or a container), with the default
// settings: quorum queues, fanout exchanges, provisioning on (plus
// queue_expires, so the shared test broker sheds old test queues).
//
// Every connection goes through a TCP proxy (Harness.Network), so the
// network cases can stall and reset it.
func TestConformance(t *testing.T) {
	base, proxy := proxied(t, rabbitmqtest.URL(t))
	url := withQuery(t, base, "")
	conformance.Run(t, conformance.Harness{
		URL: url,
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, url)
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, withQuery(t, base, "provision=false"))
		},
		Restart:        func(t testing.TB) { rabbitmqtest.Restart(t) },
		PublishForeign: foreignPublisher(t),
		Network:        proxy,
		Timeout:        30 * time.Second,
	})
}

// proxied starts a TCP proxy to the broker of the amqp URL base, closed
// when the test ends, and returns base with the proxy's address.
func proxied(t testing.TB, base string) (string, *tcpproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse broker URL: %v", err)
	}
	p, err := tcpproxy.New(u.Host)
	if err != nil {
		t.Fatalf("tcpproxy: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	u.Host = p.Addr()
	return u.String(), p
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
