package snstest_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	_ "github.com/seedmq/mq/sqs" // registers sqs:// and sns+sqs://
	"github.com/seedmq/mq/sqs/snstest"
)

// The conformance runs on moto live here, in a test binary of their own,
// so that they run beside the sqs package's tests on ElasticMQ rather
// than after them, each within go test's timeout.

// motoQuery returns the query of a URL for the moto server (so callers
// append "&name=value").
func motoQuery(t testing.TB) string {
	t.Helper()
	endpoint, region := snstest.Endpoint(t)
	return "?region=" + url.QueryEscape(region) + "&endpoint=" + url.QueryEscape(endpoint)
}

// motoFIFO is what FIFO runs on moto add to the URL. moto's long poll
// keeps the FIFO message groups that were in flight when it began as in
// flight until it ends, so after a group's messages are deleted it returns
// nothing more of that group for up to wait_time (SQS and ElasticMQ
// return them at once): a short wait keeps ordered groups moving.
const motoFIFO = "&fifo=true&wait_time=1s"

// TestSNSConformance runs the conformance suite on sns+sqs:// against
// moto, with standard topics and again with every topic a FIFO topic.
// moto keeps its state in memory only, so the broker-restart case is
// skipped (Harness.Restart is nil).
func TestSNSConformance(t *testing.T) {
	for _, mode := range []struct{ name, params string }{
		{"standard", ""},
		{"fifo", motoFIFO},
	} {
		t.Run(mode.name, func(t *testing.T) {
			u := "sns+sqs://" + motoQuery(t) + mode.params
			conformance.Run(t, conformance.Harness{
				Open: func(ctx context.Context) (mq.Broker, error) { return mq.Open(ctx, u) },
				OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
					return mq.Open(ctx, u+"&provision=false")
				},
				Timeout: 60 * time.Second,
			})
		})
	}
}

// TestConformanceMoto runs the conformance suite on sqs:// against
// moto's SQS, a second implementation beside ElasticMQ (TestConformance),
// without the broker-restart case (moto keeps its state in memory only).
func TestConformanceMoto(t *testing.T) {
	for _, mode := range []struct{ name, params string }{
		{"standard", ""},
		{"fifo", motoFIFO},
	} {
		t.Run(mode.name, func(t *testing.T) {
			u := "sqs://" + motoQuery(t) + mode.params
			conformance.Run(t, conformance.Harness{
				Open: func(ctx context.Context) (mq.Broker, error) { return mq.Open(ctx, u) },
				OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
					return mq.Open(ctx, u+"&provision=false")
				},
				Timeout: 60 * time.Second,
			})
		})
	}
}
