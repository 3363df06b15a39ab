package kafka_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// testURL returns a kafka:// URL for the test broker with extra query
// parameters (without the leading '?').
func testURL(t testing.TB, query string) string {
	t.Helper()
	u := "kafka://" + strings.Join(kafkatest.Addrs(t), ",")
	if query != "" {
		u += "?" + query
	}
	return u
}

// open opens a broker for the test and closes it in Cleanup.
func open(t testing.TB, query string) mq.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mq.Open(ctx, testURL(t, query))
	if err != nil {
		t.Fatalf("Open: got %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: got %v, want nil", err)
		}
	})
	return b
}

// newOptions returns Options for the test broker.
func newOptions(t testing.TB) kafka.Options {
	return kafka.Options{Brokers: kafkatest.Addrs(t)}
}

// uniqueName returns a topic or group name no other test uses.
func uniqueName(t testing.TB, prefix string) string {
	name := strings.NewReplacer("/", "-", " ", "-", "#", "-").Replace(t.Name())
	if len(name) > 60 {
		name = name[:60]
	}
	return fmt.Sprintf("%s-%s-%08x", prefix, name, rand.Uint32())
}

// ctxFor returns a context that ends after d or at the end of the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// subscribe runs Subscribe in a goroutine and returns a function that
// stops it and returns its error.
func subscribe(t testing.TB, b mq.Subscriber, topic string, h mq.Handler, opts ...mq.SubscribeOption) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, topic, h, opts...) }()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("Subscribe did not return within 60s of its ctx ending")
			}
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}
