// Package rabbitmqtest gives tests a real RabbitMQ broker.
//
// URL resolves the broker in this order:
//
//  1. MQ_TEST_AMQP_URL (amqp://user:pass@host:port/vhost), as printed by
//     `scripts/brokers env` in this repository;
//  2. a container started with testcontainers-go (image
//     MQ_TEST_RABBITMQ_IMAGE, default rabbitmq:3.13-alpine) when a Docker
//     engine answers; one container per test binary, removed when it exits;
//  3. otherwise the test is skipped with a message saying how to start
//     brokers, or fails when MQ_TEST_REQUIRE_BROKERS=1.
//
// Typical use in this repository:
//
//	scripts/brokers up rabbitmq && eval "$(scripts/brokers env)" && go test ./rabbitmq/...
//
// or simply `make test`.
//
// ManagementURL returns MQ_TEST_AMQP_MANAGEMENT_URL, the management
// plugin's HTTP API of the same broker, with the same skip-or-fail rule.
//
// Restart restarts the broker with the same node name and data directory, so
// durable queues and persistent messages survive, and returns when it accepts
// AMQP connections again; with MQ_TEST_AMQP_URL it runs
// `$MQ_TEST_BROKERS_SCRIPT restart rabbitmq`. Connections open at that moment
// are closed by the broker; clients must reconnect.
package rabbitmqtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq/internal/brokertest"
)

// EnvURL names the environment variable with the AMQP URL.
const EnvURL = "MQ_TEST_AMQP_URL"

// EnvManagementURL names the environment variable with the base URL of
// the management plugin's HTTP API of the broker at EnvURL.
const EnvManagementURL = "MQ_TEST_AMQP_MANAGEMENT_URL"

// DefaultImage is the container image used when Docker provides the broker.
const DefaultImage = "rabbitmq:3.13-alpine"

var broker = brokertest.New(brokertest.Spec{
	Name: "rabbitmq",
	Env:  EnvURL,
	Container: &brokertest.ContainerSpec{
		Image: imageFromEnv(),
		Port:  "5672/tcp",
		Addr:  func(port int) string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port) },
		Ready: Ready,
	},
})

func imageFromEnv() string {
	if v := os.Getenv("MQ_TEST_RABBITMQ_IMAGE"); v != "" {
		return v
	}
	return DefaultImage
}

// URL returns the AMQP URL of a running RabbitMQ broker, or skips/fails t as
// the package documentation says.
func URL(t testing.TB) string {
	t.Helper()
	return broker.Addr(t)
}

// ManagementURL returns the base URL of the management plugin's HTTP API
// of the broker URL returns (MQ_TEST_AMQP_MANAGEMENT_URL), or skips t, or
// fails it when MQ_TEST_REQUIRE_BROKERS=1, when the variable is unset.
func ManagementURL(t testing.TB) string {
	t.Helper()
	URL(t)
	v := strings.TrimSpace(os.Getenv(EnvManagementURL))
	if v == "" {
		brokertest.Unavailable(t, "rabbitmq management", EnvManagementURL, errors.New("the management plugin's URL is not known"))
	}
	return v
}

// Restart restarts the RabbitMQ broker and returns once it accepts AMQP
// connections again. It fails t when the broker cannot be restarted.
func Restart(t testing.TB) {
	t.Helper()
	broker.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := brokertest.WaitReady(ctx, broker.Addr(t), Ready); err != nil {
		t.Fatalf("rabbitmqtest: broker not ready after restart: %v", err)
	}
}

// Ready returns nil when the broker at url accepts an AMQP connection and opens a channel.
func Ready(ctx context.Context, url string) error {
	d := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial: func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{Timeout: d}).DialContext(ctx, network, addr)
		},
		Heartbeat: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return ch.Close()
}
