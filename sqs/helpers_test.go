package sqs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
	"github.com/seedmq/mq/sqs/sqstest"
)

// brokerURL returns an sqs:// URL for the test server, with a query (so
// callers append "&name=value").
func brokerURL(t testing.TB) string {
	t.Helper()
	endpoint, region := sqstest.Endpoint(t)
	return "sqs://?region=" + url.QueryEscape(region) + "&endpoint=" + url.QueryEscape(endpoint)
}

// open opens a broker for the test server with extra URL parameters and
// closes it when the test ends.
func open(t testing.TB, params string) mq.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mq.Open(ctx, brokerURL(t)+params)
	if err != nil {
		t.Fatalf("mq.Open: %v", err)
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

// topic returns a queue name unique to this test.
func topic(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	if len(name) > 50 {
		name = name[len(name)-50:]
	}
	return fmt.Sprintf("sqst-%s-%08x", strings.Trim(name, "-"), rand.Uint32())
}

// subscribe runs Subscribe in a goroutine until the test ends and returns
// a channel of its result.
func subscribe(t testing.TB, b mq.Broker, topic string, h mq.Handler, opts ...mq.SubscribeOption) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, topic, h, opts...) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				err = fmt.Errorf("Subscribe did not return within 60s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitFor receives from ch until n values arrived or timeout passes.
func waitFor[T any](t testing.TB, ch <-chan T, n int, timeout time.Duration) []T {
	t.Helper()
	var got []T
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(got) < n {
		select {
		case v := <-ch:
			got = append(got, v)
		case <-deadline.C:
			t.Fatalf("got %d values within %v, want %d", len(got), timeout, n)
		}
	}
	return got
}

// clientWith returns a client for the test server with mw added to its
// middleware stack (after the SDK's own Initialize steps).
func clientWith(t testing.TB, mw middleware.InitializeMiddleware) *awssqs.Client {
	t.Helper()
	cfg := sqstest.Config(t)
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(mw, middleware.After)
	})
	return awssqs.NewFromConfig(cfg)
}

// newBroker returns the driver over c with opts, closed when the test
// ends.
func newBroker(t testing.TB, c *awssqs.Client, opts sqs.Options) *sqs.Broker {
	t.Helper()
	opts.Client = c
	b, err := sqs.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}
