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

	// PublishForeign publishes one message to topic with the broker's own
	// client, not through mq, as a producer that does not use mq would:
	// key as the broker's native key (Kafka record key, AMQP routing key,
	// SQS MessageGroupId), body as the native body, and headers as native
	// headers (Kafka headers, AMQP headers with byte-array values for
	// values that are not UTF-8, SQS String or Binary message attributes),
	// without an ID of mq's. It returns once the broker has accepted the
	// message. When the broker has no native key for topic (SQS standard
	// queues) or cannot carry key there, it returns an error wrapping
	// mq.ErrNotSupported without publishing, and the suite tries again
	// with a nil key. The foreign cases provision topic and its groups
	// first. Nil skips the foreign cases.
	PublishForeign func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error

	// Timeout bounds each wait for an expected delivery. Default 10s; real
	// brokers whose groups take seconds to form want more.
	Timeout time.Duration

	// Grace is how long the suite watches for something that must not
	// happen (a redelivery of an acknowledged message, a handler beyond
	// the concurrency limit) after a positive signal says it would have
	// happened by then on a correct broker. Default max(1s, Timeout/10).
	Grace time.Duration

	// LeakIgnore names functions whose goroutines the goroutine-leak check
	// ignores, for client libraries that keep process-wide goroutines
	// which no Close can end (passed to goleak.IgnoreAnyFunction, so a
	// name matches any frame of the goroutine's stack, e.g.
	// "go.opencensus.io/stats/view.(*worker).start"). Default none: every
	// goroutine a connection starts must end when it is closed.
	LeakIgnore []string
}

// withDefaults returns h with zero fields set to their documented
// defaults.
func (h Harness) withDefaults() Harness {
	if h.Timeout <= 0 {
		h.Timeout = 10 * time.Second
	}
	if h.Grace <= 0 {
		h.Grace = max(time.Second, h.Timeout/10)
	}
	return h
}
