package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/middleware"
)

func TestHealth(t *testing.T) {
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if err := mq.Provision(ctx, b, "orders", "billing"); err != nil {
		t.Fatal(err)
	}
	h := middleware.NewHealth(middleware.HealthOptions{Broker: b, StallAfter: 100 * time.Millisecond})
	h.Watch("orders", "billing")
	if _, err := h.Check(ctx); err != nil {
		t.Fatalf("Check with nothing to do: got %v, want nil", err)
	}

	// A backlog and no subscriber: stalled once StallAfter has passed.
	if err := b.Publish(ctx, "orders", mq.NewMessage([]byte("1")), mq.NewMessage([]byte("2"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	subs, err := h.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), `topic "orders" group "billing": stalled`) || !strings.Contains(err.Error(), "2 message(s) wait") {
		t.Fatalf("Check with a backlog and no progress: got %v, want stalled, 2 waiting", err)
	}
	if len(subs) != 1 || !subs[0].Stalled || subs[0].Backlog != 2 {
		t.Errorf("Check: got %+v, want one stalled subscription with backlog 2", subs)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	probe := func() (int, map[string]any) {
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, body
	}
	if code, body := probe(); code != http.StatusServiceUnavailable || body["ready"] != false {
		t.Errorf("probe while stalled: %d %v, want 503, not ready", code, body)
	}

	// A subscriber works the backlog off: ready again.
	errBoom := errors.New("boom")
	first := true
	sub := mq.Start(ctx, b, "orders", h.Middleware()(func(context.Context, *mq.Message) error {
		if first {
			first = false
			return errBoom
		}
		return nil
	}), mq.Group("billing"), mq.Backoff(func(int) time.Duration { return 0 }))
	defer sub.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.Check(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Check after the backlog was worked off: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := h.Snapshot()[0]
	if s.Handled != 3 || s.Failed != 1 || s.LastError != "boom" || s.InFlight != 0 || s.LastProgress.IsZero() || s.Backlog != 0 {
		t.Errorf("Snapshot: got %+v, want 3 handled, 1 failed (boom), none in flight, backlog 0", s)
	}
	if code, body := probe(); code != http.StatusOK || body["ready"] != true {
		t.Errorf("probe when ready: %d %v, want 200, ready", code, body)
	}
}

func TestHealthPanicPassesThrough(t *testing.T) {
	h := middleware.NewHealth(middleware.HealthOptions{})
	handler := h.Middleware()(func(context.Context, *mq.Message) error { panic("boom") })
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the handler's panic", r)
			}
		}()
		_ = handler(context.Background(), &mq.Message{Topic: "t", Group: "g"})
	}()
	if s := h.Snapshot(); len(s) != 1 || s[0].Failed != 1 || s[0].InFlight != 0 || s[0].LastError != "panic: boom" {
		t.Errorf("Snapshot after a panic: got %+v, want one failed run, none in flight", s)
	}
}
