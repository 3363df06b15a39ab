package mq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

// newMemory returns a private memory broker.
func newMemory(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(context.Background(), memory.Options{})
	if err != nil {
		t.Fatalf("memory.New: %v", err)
	}
	return b
}

// waitDone fails the test if sub has not ended within a few seconds.
func waitDone(t *testing.T, sub *mq.Subscription) {
	t.Helper()
	select {
	case <-sub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe did not return within 5s")
	}
}

func TestStartStop(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	defer b.Close(ctx)
	if err := b.Provision(ctx, "t", "g"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	sub := mq.Start(ctx, b, "t", func(ctx context.Context, m *mq.Message) error {
		got <- string(m.Body)
		return nil
	}, mq.Group("g"))
	if err := sub.Err(); err != nil {
		t.Fatalf("Err while running: got %v, want nil", err)
	}
	if err := b.Publish(ctx, "t", &mq.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-got:
		if body != "x" {
			t.Fatalf("handled %q, want %q", body, "x")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message was not handled within 5s")
	}
	if err := sub.Stop(); err != nil {
		t.Fatalf("Stop: got %v, want nil", err)
	}
	if err := sub.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after Stop: got %v, want context.Canceled", err)
	}
	if err := sub.Stop(); err != nil {
		t.Fatalf("second Stop: got %v, want nil", err)
	}
}

func TestStartReportsSubscribeError(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	defer b.Close(ctx)
	// No group: Subscribe refuses, and the subscription ends at once.
	sub := mq.Start(ctx, b, "t", func(context.Context, *mq.Message) error { return nil })
	waitDone(t, sub)
	if err := sub.Err(); !errors.Is(err, mq.ErrInvalidOption) {
		t.Fatalf("Err: got %v, want ErrInvalidOption", err)
	}
	if err := sub.Stop(); !errors.Is(err, mq.ErrInvalidOption) {
		t.Fatalf("Stop: got %v, want the Subscribe error (ErrInvalidOption)", err)
	}
}

func TestStartEndsWithCloseAndParentCtx(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	h := func(context.Context, *mq.Message) error { return nil }

	parent, cancel := context.WithCancel(ctx)
	byCtx := mq.Start(parent, b, "t", h, mq.Group("g"))
	cancel()
	waitDone(t, byCtx)
	if err := byCtx.Stop(); err != nil {
		t.Fatalf("Stop after the parent ctx ended: got %v, want nil", err)
	}

	byClose := mq.Start(ctx, b, "t", h, mq.Group("g"))
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, byClose)
	if err := byClose.Err(); !errors.Is(err, mq.ErrClosed) {
		t.Fatalf("Err after Close: got %v, want ErrClosed", err)
	}
	if err := byClose.Stop(); err != nil {
		t.Fatalf("Stop after Close: got %v, want nil", err)
	}
}
