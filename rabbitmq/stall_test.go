package rabbitmq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// TestCloseCanceledCtxStalledNetwork pins issue 20: with the network
// stalled, Close whose ctx is canceled (not a deadline) returns within
// driver.CloseGrace plus a second of the cancel; the connection close
// used to wait 5s more for the broker's close-ok.
func TestCloseCanceledCtxStalledNetwork(t *testing.T) {
	base, proxy := proxied(t, rabbitmqtest.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := mq.Open(ctx, withQuery(t, base, ""))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	topic := uniqueTopic(t)
	if err := mq.Provision(ctx, b, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	c := newCollector()
	subDone := make(chan error, 1)
	go func() { subDone <- b.Subscribe(context.Background(), topic, c.handler, mq.Group("g")) }()
	if err := b.Publish(ctx, topic, &mq.Message{Body: []byte("before")}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c.wait(t, 1)

	proxy.Stall()
	defer proxy.Resume()
	closeCtx, stop := context.WithCancel(context.Background())
	closed := make(chan error, 1)
	go func() { closed <- b.Close(closeCtx) }()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	stop()
	bound := driver.CloseGrace + time.Second
	select {
	case err := <-closed:
		t.Logf("Close returned %v %v after its ctx was canceled", err, time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > bound {
			t.Errorf("Close returned %v after its ctx was canceled, want at most %v", took, bound)
		}
	case <-time.After(waitFor):
		t.Fatalf("Close under a stalled network had not returned %v after its ctx was canceled", waitFor)
	}
	select {
	case err := <-subDone:
		if !errors.Is(err, mq.ErrClosed) {
			t.Errorf("Subscribe ended by Close: got %v, want mq.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Errorf("Subscribe had not returned a second after Close")
	}
}
