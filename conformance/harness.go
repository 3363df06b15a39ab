package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// Harness tells the suite how to reach the broker under test.
type Harness struct {
	// Open returns a new, independent connection to the broker under
	// test, as a separate instance of a service would make. The suite opens
	// several to play producer and consumer services, and closes each one
	// it opens. Required.
	Open func(ctx context.Context) (mq.Broker, error)

	// OpenNoProvision opens a connection configured to use existing
	// topics and groups only, never creating them. Nil skips the
	// provisioning-off case.
	OpenNoProvision func(ctx context.Context) (mq.Broker, error)

	// Restart restarts the broker process and returns once it is ready
	// again. Nil skips the broker-restart case.
	Restart func(t testing.TB)

	// Timeout bounds each wait for an expected delivery. Default 10s; real
	// brokers whose groups take seconds to form want more.
	Timeout time.Duration
}
