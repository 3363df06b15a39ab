package sqs_test

import (
	"context"
	"errors"
	neturl "net/url"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
	"github.com/seedmq/mq/internal/tcpproxy"
	"github.com/seedmq/mq/sqs/sqstest"
)

// TestSubscribeReturnsUnderStalledNetwork pins issue 20: a handler
// acknowledges while the network is stalled, so its DeleteMessageBatch
// hangs; Subscribe whose ctx is then canceled must return within
// driver.CloseGrace plus a second, not after the 30s call timeout.
func TestSubscribeReturnsUnderStalledNetwork(t *testing.T) {
	endpoint, region := sqstest.Endpoint(t)
	u, err := neturl.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := mq.Open(ctx, "sqs://?region="+neturl.QueryEscape(region)+"&endpoint="+neturl.QueryEscape(u.String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Resume()
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(c)
	})
	top := topic(t)
	if err := mq.Provision(ctx, b, top, "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, top, mq.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	subCtx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(subCtx, top, func(context.Context, *mq.Message) error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-release
			return nil // acknowledged while the network is stalled
		}, mq.Group("g"))
	}()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	proxy.Stall()
	close(release)
	time.Sleep(300 * time.Millisecond) // the delete is on its way
	start := time.Now()
	stop()
	bound := driver.CloseGrace + time.Second
	select {
	case err := <-done:
		took := time.Since(start)
		t.Logf("Subscribe returned %v %v after its ctx was canceled", err, took.Round(time.Millisecond))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe: got %v, want context.Canceled", err)
		}
		if took > bound {
			t.Errorf("Subscribe returned %v after its ctx was canceled under a stalled network, want at most %v", took, bound)
		}
	case <-time.After(time.Minute):
		t.Fatal("Subscribe had not returned a minute after its ctx was canceled")
	}
}
