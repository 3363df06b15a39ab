package sqs_test

import (
	"context"
	neturl "net/url"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/internal/tcpproxy"
	"github.com/seedmq/mq/sqs/sqstest"
)

// TestConformance runs the conformance suite against ElasticMQ with
// standard queues, and again with every topic a FIFO queue (fifo=true),
// where OrderingByKey holds and DelayedDelivery does not. Every request
// goes to the endpoint through a TCP proxy (Harness.Network), so the
// network cases can stall and reset it.
func TestConformance(t *testing.T) {
	for _, mode := range []struct{ name, params string }{
		{"standard", ""},
		{"fifo", "&fifo=true"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			endpoint, region := sqstest.Endpoint(t)
			u, err := neturl.Parse(endpoint)
			if err != nil {
				t.Fatalf("endpoint %q: %v", endpoint, err)
			}
			proxy, err := tcpproxy.New(u.Host)
			if err != nil {
				t.Fatalf("tcpproxy: %v", err)
			}
			t.Cleanup(func() { proxy.Close() })
			u.Host = proxy.Addr()
			url := "sqs://?region=" + neturl.QueryEscape(region) + "&endpoint=" + neturl.QueryEscape(u.String()) + mode.params
			conformance.Run(t, conformance.Harness{
				URL:     url,
				Network: proxy,
				Open:    func(ctx context.Context) (mq.Broker, error) { return mq.Open(ctx, url) },
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
