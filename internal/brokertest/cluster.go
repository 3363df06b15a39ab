package brokertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The clusters of `scripts/brokers up kafka-cluster rabbitmq-cluster`
// (three Kafka nodes in KRaft with TLS and SASL/SCRAM listeners, three
// RabbitMQ nodes with TLS listeners) serve the tests whose names contain
// Cluster, TLS or SASL. `make test-cluster` starts them, exports their
// addresses (`scripts/brokers env` prints them while they run), runs
// `go test -tags cluster -run 'Cluster|TLS|SASL' ./...` with MQ_TEST_REQUIRE_CLUSTER=1
// and stops them again. The tests carry the build tag "cluster", so
// `make test` neither builds nor skips them: they take three
// JVMs and three Erlang VMs, and their failure tests kill nodes and time
// the recovery, which wants the machine to itself.

// EnvRequireCluster, when "1" or "true", turns a missing cluster into a
// failure instead of a skip.
const EnvRequireCluster = "MQ_TEST_REQUIRE_CLUSTER"

// ClusterHint tells a person how to run the cluster tests.
const ClusterHint = "run `make test-cluster`, or `scripts/brokers up kafka-cluster rabbitmq-cluster` " +
	"and `eval \"$(scripts/brokers env)\"` before `go test -run 'Cluster|TLS|SASL' ./...`"

// ClusterEnv returns the value of the environment variable name, which
// `scripts/brokers env` sets while a cluster runs. When it is unset the
// test is skipped, or fails with MQ_TEST_REQUIRE_CLUSTER=1.
func ClusterEnv(t testing.TB, name string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("no cluster: %s is unset; %s", name, ClusterHint)
	if truthy(os.Getenv(EnvRequireCluster)) {
		t.Fatal(msg + " [" + EnvRequireCluster + " is set, so this is a failure, not a skip]")
	}
	t.Skip(msg)
	return ""
}

// Brokers runs `$MQ_TEST_BROKERS_SCRIPT args...` (scripts/brokers),
// bounded by timeout, and returns its standard output. It fails t when the
// command fails, with its output.
func Brokers(t testing.TB, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := BrokersErr(timeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BrokersErr is Brokers for use outside the test goroutine: it returns the
// failure instead of failing a test.
func BrokersErr(timeout time.Duration, args ...string) (string, error) {
	script := strings.TrimSpace(os.Getenv(EnvScript))
	if script == "" {
		return "", fmt.Errorf("%s is unset (run `eval \"$(scripts/brokers env)\"`, which sets it to the absolute path of scripts/brokers)", EnvScript)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.WaitDelay = 10 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s%s", script, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}
