// Package brokertest holds what kafkatest, rabbitmqtest and sqstest share:
// finding a broker from the environment, starting one with testcontainers-go
// when a Docker engine answers, skipping (or failing, with
// MQ_TEST_REQUIRE_BROKERS=1) when neither works, and restarting a broker.
//
// Order of resolution for a broker:
//
//  1. its environment variable (MQ_TEST_KAFKA_ADDR, MQ_TEST_AMQP_URL,
//     MQ_TEST_SQS_ENDPOINT), as printed by `scripts/brokers env`;
//  2. a container started once per test binary with testcontainers-go, when
//     a Docker engine answers a health check (it is removed by the
//     testcontainers reaper when the test binary exits);
//  3. otherwise t.Skip with a message naming the command that starts
//     brokers, or t.Fatal when MQ_TEST_REQUIRE_BROKERS=1.
//
// Broker restarts and ordinary tests of other test binaries (go test runs
// packages in parallel) are kept apart by a file lock per broker: a test that
// uses a broker holds it shared for its duration, Restart takes it exclusive
// (bounded wait), so a restart in one package does not break tests that run
// at the same moment in another package.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables read by the helpers.
const (
	// EnvRequire, when "1" or "true", turns every would-be skip into a failure.
	EnvRequire = "MQ_TEST_REQUIRE_BROKERS"
	// EnvScript is the absolute path of scripts/brokers, used by Restart.
	EnvScript = "MQ_TEST_BROKERS_SCRIPT"
	// EnvNoDocker, when "1" or "true", never tries Docker/testcontainers.
	EnvNoDocker = "MQ_TEST_NO_DOCKER"
)

// StartHint tells a person how to get brokers for the tests.
const StartHint = "start brokers with `make test`, or run `scripts/brokers up` and " +
	"`eval \"$(scripts/brokers env)\"` before `go test`"

// RestartTimeout bounds one broker restart.
const RestartTimeout = 5 * time.Minute

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Required reports whether MQ_TEST_REQUIRE_BROKERS asks for failures instead of skips.
func Required() bool { return truthy(os.Getenv(EnvRequire)) }

// Unavailable skips t, or fails it when MQ_TEST_REQUIRE_BROKERS=1, saying why
// there is no broker and how to start one.
func Unavailable(t testing.TB, broker, envVar string, why error) {
	t.Helper()
	msg := fmt.Sprintf("%s: no broker: %s is unset and no container could be started (%v); %s",
		broker, envVar, why, StartHint)
	if Required() {
		t.Fatal(msg + " [" + EnvRequire + " is set, so this is a failure, not a skip]")
	}
	t.Skip(msg)
}

// Spec describes one broker kind.
type Spec struct {
	// Name is the scripts/brokers name: kafka, rabbitmq or elasticmq.
	Name string
	// Env is the environment variable that holds the broker address.
	Env string
	// Container describes how to run the broker under Docker; nil for none.
	Container *ContainerSpec
}

// Broker resolves and restarts one broker kind for a test binary.
type Broker struct {
	spec Spec

	once sync.Once
	ctr  *runningContainer
	addr string
	err  error

	lock *sharedLock
}

// New returns a Broker for spec.
func New(spec Spec) *Broker {
	return &Broker{spec: spec, lock: newSharedLock(spec.Name)}
}

// Addr returns the broker's address as its environment variable states it,
// starting a container if needed. It skips or fails t when no broker can be had.
// t holds the broker's shared lock until it ends.
func (b *Broker) Addr(t testing.TB) string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(b.spec.Env)); v != "" {
		b.hold(t, v)
		return v
	}
	b.once.Do(func() { b.addr, b.ctr, b.err = b.startContainer() })
	if b.err != nil {
		Unavailable(t, b.spec.Name, b.spec.Env, b.err)
	}
	b.hold(t, b.addr)
	return b.addr
}

func (b *Broker) hold(t testing.TB, key string) {
	t.Helper()
	b.lock.acquireShared(t, key)
	t.Cleanup(func() { b.lock.releaseShared() })
}

func (b *Broker) startContainer() (string, *runningContainer, error) {
	if b.spec.Container == nil {
		return "", nil, errors.New("no container recipe")
	}
	if truthy(os.Getenv(EnvNoDocker)) {
		return "", nil, errors.New(EnvNoDocker + " is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := DockerHealthy(ctx); err != nil {
		return "", nil, err
	}
	c, err := startContainer(ctx, b.spec.Container)
	if err != nil {
		return "", nil, fmt.Errorf("start %s container: %w", b.spec.Name, err)
	}
	return c.addr, c, nil
}

// Restart restarts the broker and returns once it is ready again. With the
// broker from the environment it runs `$MQ_TEST_BROKERS_SCRIPT restart NAME`;
// with a container it stops and starts the container (same ports). Data and
// durable state survive. It fails t when it cannot restart.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	start := time.Now()
	if v := strings.TrimSpace(os.Getenv(b.spec.Env)); v != "" {
		script := strings.TrimSpace(os.Getenv(EnvScript))
		if script == "" {
			t.Fatalf("%s: cannot restart the broker at %s: %s is unset (run `eval \"$(scripts/brokers env)\"`, "+
				"which sets it to the absolute path of scripts/brokers)", b.spec.Name, v, EnvScript)
		}
		b.lock.exclusive(t, v, func() {
			ctx, cancel := context.WithTimeout(context.Background(), RestartTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, script, "restart", b.spec.Name)
			cmd.WaitDelay = 10 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %s restart %s: %v\n%s", b.spec.Name, script, b.spec.Name, err, out)
			}
		})
		t.Logf("%s: restarted with %s in %v", b.spec.Name, script, time.Since(start).Round(time.Millisecond))
		return
	}
	b.once.Do(func() { b.addr, b.ctr, b.err = b.startContainer() })
	if b.ctr == nil {
		t.Fatalf("%s: cannot restart: %s is unset and no container runs (%v)", b.spec.Name, b.spec.Env, b.err)
	}
	b.lock.exclusive(t, b.addr, func() {
		ctx, cancel := context.WithTimeout(context.Background(), RestartTimeout)
		defer cancel()
		if err := b.ctr.restart(ctx); err != nil {
			t.Fatalf("%s: restart container: %v", b.spec.Name, err)
		}
	})
	t.Logf("%s: restarted container in %v", b.spec.Name, time.Since(start).Round(time.Millisecond))
}
