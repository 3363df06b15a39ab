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
	// it opens. Required. The consumer-crash case also calls it in a
	// subprocess, the test binary run again for that case alone (with
	// CrashChildEnv set), so what Open connects to must follow from the
	// test's code and environment, not from state of the parent process.
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

	// URL is the URL Open connects with, if it uses one. The
	// malformed-url case appends malformed query parameters to it and
	// checks that mq.Open refuses each with ErrInvalidURL. Empty skips
	// that case.
	URL string

	// Network, if set, controls the network between the broker and the
	// connections Open makes (a TCP proxy in front of the broker, say).
	// The network cases stall, resume and reset it. Nil skips them.
	Network Network

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

// Network is a fault-injection hook on the connections between the
// clients a Harness opens and the broker, such as a TCP proxy that every
// connection goes through. Its methods return at once.
type Network interface {
	// Stall stops every byte in both directions on every connection,
	// open or opened later, keeping the connections open, until Resume.
	Stall()
	// Resume ends a Stall: held bytes flow on.
	Resume()
	// Reset closes every open connection with a TCP reset. New
	// connections are accepted as before.
	Reset()
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
