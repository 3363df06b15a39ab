// Package kafkatest gives tests a real Apache Kafka broker.
//
// Addrs resolves the broker in this order:
//
//  1. MQ_TEST_KAFKA_ADDR (comma-separated host:port list), as printed by
//     `scripts/brokers env` in this repository;
//  2. a container started with testcontainers-go (image MQ_TEST_KAFKA_IMAGE,
//     default apache/kafka:3.9.1, single-node KRaft) when a Docker engine
//     answers; one container per test binary, removed when it exits;
//  3. otherwise the test is skipped with a message saying how to start
//     brokers, or fails when MQ_TEST_REQUIRE_BROKERS=1.
//
// Typical use in this repository:
//
//	scripts/brokers up kafka && eval "$(scripts/brokers env)" && go test ./kafka/...
//
// or simply `make test`. In a user's own CI, set MQ_TEST_KAFKA_ADDR to any
// broker, or let Docker provide one.
//
// Restart restarts the broker (data kept) and returns when it answers again;
// with MQ_TEST_KAFKA_ADDR it runs `$MQ_TEST_BROKERS_SCRIPT restart kafka`.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq/internal/brokertest"
)

// EnvAddr names the environment variable with the broker addresses.
const EnvAddr = "MQ_TEST_KAFKA_ADDR"

// DefaultImage is the container image used when Docker provides the broker.
const DefaultImage = "apache/kafka:3.9.1"

var broker = brokertest.New(brokertest.Spec{
	Name: "kafka",
	Env:  EnvAddr,
	Container: &brokertest.ContainerSpec{
		Image:    imageFromEnv(),
		SamePort: true,
		Env: func(port int) map[string]string {
			return map[string]string{
				"KAFKA_NODE_ID":                                  "1",
				"KAFKA_PROCESS_ROLES":                            "broker,controller",
				"KAFKA_LISTENERS":                                fmt.Sprintf("PLAINTEXT://0.0.0.0:%d,CONTROLLER://127.0.0.1:9093", port),
				"KAFKA_ADVERTISED_LISTENERS":                     fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", port),
				"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
				"KAFKA_INTER_BROKER_LISTENER_NAME":               "PLAINTEXT",
				"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@127.0.0.1:9093",
				"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
				"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":             "10",
				"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
				"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
				"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
				"KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS":             "1000",
				"KAFKA_NUM_PARTITIONS":                           "1",
				"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "true",
			}
		},
		Addr:  func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) },
		Ready: func(ctx context.Context, addr string) error { return Ready(ctx, strings.Split(addr, ",")) },
	},
})

func imageFromEnv() string {
	if v := os.Getenv("MQ_TEST_KAFKA_IMAGE"); v != "" {
		return v
	}
	return DefaultImage
}

// Addrs returns the bootstrap addresses (host:port) of a running Kafka
// broker, or skips/fails t as the package documentation says.
func Addrs(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, a := range strings.Split(broker.Addr(t), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		t.Fatalf("kafkatest: %s holds no address", EnvAddr)
	}
	return out
}

// Restart restarts the Kafka broker and returns once it answers metadata
// requests again. Topics, offsets and committed consumer-group offsets are
// kept. It fails t when the broker cannot be restarted.
func Restart(t testing.TB) {
	t.Helper()
	broker.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := brokertest.WaitReady(ctx, broker.Addr(t), func(ctx context.Context, a string) error {
		return Ready(ctx, strings.Split(a, ","))
	}); err != nil {
		t.Fatalf("kafkatest: broker not ready after restart: %v", err)
	}
}

// Ready returns nil when one of addrs answers a metadata request that names
// at least one broker, a controller and a leader for every partition (after a
// restart the broker answers before it leads its partitions again).
func Ready(ctx context.Context, addrs []string) error {
	var errs []error
	for _, a := range addrs {
		c := &kafka.Client{Addr: kafka.TCP(a), Timeout: 5 * time.Second}
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
		if err == nil && (len(md.Brokers) == 0 || md.Controller.Host == "") {
			err = errors.New("no broker or controller in metadata yet")
		}
		if err == nil {
			err = leaderless(md)
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	return errors.Join(errs...)
}

func leaderless(md *kafka.MetadataResponse) error {
	for _, tp := range md.Topics {
		if tp.Error != nil {
			return fmt.Errorf("topic %s: %w", tp.Name, tp.Error)
		}
		for _, p := range tp.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("topic %s partition %d has no leader yet (%v)", tp.Name, p.ID, p.Error)
			}
		}
	}
	return nil
}
