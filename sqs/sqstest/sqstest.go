// Package sqstest gives tests a real SQS-compatible server (ElasticMQ).
//
// Endpoint resolves the server in this order:
//
//  1. MQ_TEST_SQS_ENDPOINT (e.g. http://127.0.0.1:9324) and
//     MQ_TEST_SQS_REGION (default "elasticmq"), as printed by
//     `scripts/brokers env` in this repository;
//  2. a container started with testcontainers-go (image
//     MQ_TEST_ELASTICMQ_IMAGE, default softwaremill/elasticmq-native:1.7.1,
//     with queue and message persistence on) when a Docker engine answers;
//     one container per test binary, removed when it exits;
//  3. otherwise the test is skipped with a message saying how to start
//     brokers, or fails when MQ_TEST_REQUIRE_BROKERS=1.
//
// Typical use in this repository:
//
//	scripts/brokers up elasticmq && eval "$(scripts/brokers env)" && go test ./sqs/...
//
// or simply `make test`.
//
// ElasticMQ accepts any credentials; Config returns an aws.Config with static
// dummy credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set) and the
// endpoint as BaseEndpoint.
//
// Restart restarts the server (queues and messages persist) and returns when
// it answers ListQueues again; with MQ_TEST_SQS_ENDPOINT it runs
// `$MQ_TEST_BROKERS_SCRIPT restart elasticmq`.
package sqstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/seedmq/mq/internal/brokertest"
)

// Environment variables read by this package.
const (
	EnvEndpoint = "MQ_TEST_SQS_ENDPOINT"
	EnvRegion   = "MQ_TEST_SQS_REGION"
)

// DefaultImage is the container image used when Docker provides the server.
const DefaultImage = "softwaremill/elasticmq-native:1.7.1"

// DefaultRegion is the region used when MQ_TEST_SQS_REGION is unset.
const DefaultRegion = "elasticmq"

var broker = brokertest.New(brokertest.Spec{
	Name: "elasticmq",
	Env:  EnvEndpoint,
	Container: &brokertest.ContainerSpec{
		Image:    imageFromEnv(),
		SamePort: true, // queue URLs carry the port ElasticMQ listens on
		Files: func(port int) map[string]string {
			return map[string]string{"/opt/elasticmq.conf": containerConfig(port)}
		},
		Addr:  func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) },
		Ready: Ready,
		BeforeRestart: func(ctx context.Context, endpoint string) func(context.Context) error {
			want, err := queueCount(ctx, endpoint)
			return func(ctx context.Context) error {
				if err != nil {
					return nil
				}
				return waitQueues(ctx, endpoint, want)
			}
		},
	},
})

// queueCount returns how many queues ListQueues names (first page).
func queueCount(ctx context.Context, endpoint string) (int, error) {
	body, err := listQueues(ctx, endpoint)
	if err != nil {
		return 0, err
	}
	return strings.Count(string(body), `"http`), nil
}

// waitQueues waits (at most a minute) until at least want queues are back
// after a restart: ElasticMQ answers before it has restored persisted queues.
func waitQueues(ctx context.Context, endpoint string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		n, err := queueCount(ctx, endpoint)
		if err == nil && n >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("elasticmq: %d of %d queues restored after restart: %w", n, want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func imageFromEnv() string {
	if v := os.Getenv("MQ_TEST_ELASTICMQ_IMAGE"); v != "" {
		return v
	}
	return DefaultImage
}

func containerConfig(port int) string {
	return fmt.Sprintf(`include classpath("application.conf")
node-address { protocol = "http", host = "127.0.0.1", port = %d, context-path = "" }
rest-sqs { enabled = true, bind-port = %d, bind-hostname = "0.0.0.0", sqs-limits = strict }
generate-node-address = false
aws { region = %q, accountId = "000000000000" }
queues-storage { enabled = true, path = "/data/queues.conf" }
messages-storage { enabled = true, uri = "jdbc:h2:/data/elasticmq-h2" }
`, port, port, DefaultRegion)
}

// Endpoint returns the server's base URL and the region to sign requests
// for, or skips/fails t as the package documentation says.
func Endpoint(t testing.TB) (endpoint, region string) {
	t.Helper()
	endpoint = broker.Addr(t)
	region = os.Getenv(EnvRegion)
	if region == "" {
		region = DefaultRegion
	}
	return endpoint, region
}

// Config returns an aws.Config for the test server: its region, static
// credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set, else dummy
// ones) and BaseEndpoint. Use it with sqs.NewFromConfig.
func Config(t testing.TB) aws.Config {
	t.Helper()
	endpoint, region := Endpoint(t)
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		id, secret = "test", "test"
	}
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// Restart restarts the server and returns once it answers ListQueues again.
// Queues and their messages (also in-flight ones) are kept. It fails t when
// the server cannot be restarted.
func Restart(t testing.TB) {
	t.Helper()
	broker.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := brokertest.WaitReady(ctx, broker.Addr(t), Ready); err != nil {
		t.Fatalf("sqstest: server not ready after restart: %v", err)
	}
}

// Ready returns nil when the server at endpoint answers a ListQueues call in
// the AWS JSON protocol.
func Ready(ctx context.Context, endpoint string) error {
	_, err := listQueues(ctx, endpoint)
	return err
}

func listQueues(ctx context.Context, endpoint string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", bytes.NewReader([]byte("{}")))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amz-Target", "AmazonSQS.ListQueues")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ListQueues: %s: %.300s", resp.Status, body)
	}
	return body, nil
}
