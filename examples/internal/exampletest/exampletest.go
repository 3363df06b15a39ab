// Package exampletest runs the examples' tests on every broker at hand:
// the memory broker always, and each real broker that the test helper
// packages (kafkatest, rabbitmqtest, sqstest, snstest) find. Those skip a broker's
// subtest with a message when it is not available, or fail it when
// MQ_TEST_REQUIRE_BROKERS=1.
//
// It imports no driver: an example's test passes on a broker only if the
// example itself registers that broker's URL scheme.
package exampletest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka/kafkatest"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
	"github.com/seedmq/mq/sqs/snstest"
	"github.com/seedmq/mq/sqs/sqstest"
)

// Timeout bounds one example run in a test. Kafka groups take seconds to
// form, and every example starts several.
const Timeout = 3 * time.Minute

// A target is one broker the examples run on.
type target struct {
	name string
	// url returns the broker's URL, or skips or fails t when the broker is
	// not available.
	url func(t testing.TB) string
}

var targets = []target{
	{"memory", func(testing.TB) string { return "mem://" }},
	{"kafka", func(t testing.TB) string { return "kafka://" + strings.Join(kafkatest.Addrs(t), ",") }},
	{"rabbitmq", rabbitmqtest.URL},
	{"sqs", sqsURL},
	{"sns+sqs", snsURL},
}

// sqsURL returns an sqs:// URL for the test server. Local servers accept
// any credentials; the AWS SDK only needs some, so the test supplies them
// when the environment has none.
func sqsURL(t testing.TB) string {
	endpoint, region := sqstest.Endpoint(t)
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		t.Setenv("AWS_ACCESS_KEY_ID", "test")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	}
	return "sqs://?region=" + url.QueryEscape(region) + "&endpoint=" + url.QueryEscape(endpoint)
}

// snsURL returns an sns+sqs:// URL for the test server (moto), which
// answers SNS and SQS on one endpoint.
func snsURL(t testing.TB) string {
	endpoint, region := snstest.Endpoint(t)
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		t.Setenv("AWS_ACCESS_KEY_ID", "test")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	}
	return "sns+sqs://?region=" + url.QueryEscape(region) + "&endpoint=" + url.QueryEscape(endpoint)
}

// Run calls f in one subtest per broker, with the broker's URL and
// capabilities and a context bounded by Timeout. On the memory broker it
// also checks that the run left no goroutine behind.
func Run(t *testing.T, f func(t *testing.T, ctx context.Context, url string, caps mq.Capabilities)) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			url := tg.url(t)
			if tg.name == "memory" {
				checkGoroutines(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), Timeout)
			t.Cleanup(cancel)
			f(t, ctx, url, capabilities(t, ctx, url))
		})
	}
}

// capabilities opens url once to read what the broker can do.
func capabilities(t *testing.T, ctx context.Context, url string) mq.Capabilities {
	t.Helper()
	b, err := mq.Open(ctx, url)
	if err != nil {
		t.Fatalf("open %s broker: %v", t.Name(), err)
	}
	caps := b.Capabilities()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	return caps
}

// Prefix returns a topic and group name prefix unique to this call, valid
// on every broker (SQS allows letters, digits, '-' and '_').
func Prefix(t testing.TB) string {
	p := "ex-" + strings.ToLower(rand.Text()[:8]) + "-"
	t.Logf("names start with %s", p)
	return p
}

// checkGoroutines fails t if, once t's other cleanups ran, more goroutines
// run than when it was called, after waiting up to five seconds for them
// to end.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // nothing to wait on: goroutines end on their own
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: got %d after the run, want at most %d as before it\n%s", n, before, buf)
		}
	})
}
