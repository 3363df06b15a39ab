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
	"github.com/seedmq/mq/driver"
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

// TestHealthTrack checks the connection state Track records: not
// connected until the driver reports a connection, connected while
// Subscribe runs, and not ready DisconnectedAfter after it returned.
func TestHealthTrack(t *testing.T) {
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	const bound = time.Second
	h := middleware.NewHealth(middleware.HealthOptions{Broker: b, DisconnectedAfter: bound})
	opt := h.Track("orders", "billing")
	subs := h.Snapshot()
	if len(subs) != 1 || subs[0].Connected == nil || *subs[0].Connected || subs[0].Assigned != -1 {
		t.Fatalf("Snapshot after Track: got %+v, want one subscription, not connected, assigned -1", subs)
	}

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(sctx, "orders", func(context.Context, *mq.Message) error { return nil }, mq.Group("billing"), opt)
	}()
	connected := func() bool {
		s := h.Snapshot()
		return len(s) == 1 && s[0].Connected != nil && *s[0].Connected
	}
	for i := 0; i < 200 && !connected(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !connected() {
		t.Fatalf("Snapshot while subscribed: got %+v, want connected", h.Snapshot())
	}
	time.Sleep(bound)
	if _, err := h.Check(ctx); err != nil {
		t.Fatalf("Check while connected: got %v, want nil", err)
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe: got %v, want context.Canceled", err)
	}
	if connected() {
		t.Fatalf("Snapshot after Subscribe returned: got %+v, want not connected", h.Snapshot())
	}
	if _, err := h.Check(ctx); err != nil {
		t.Errorf("Check at once after Subscribe returned: got %v, want nil until DisconnectedAfter", err)
	}
	time.Sleep(bound + 20*time.Millisecond)
	_, err = h.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), `topic "orders" group "billing": not connected to the broker for`) {
		t.Fatalf("Check %v after Subscribe returned: got %v, want not connected", bound, err)
	}

	// A new Subscribe with a new tracker replaces the stopped one.
	sctx, cancel = context.WithCancel(ctx)
	defer cancel()
	go func() {
		done <- b.Subscribe(sctx, "orders", func(context.Context, *mq.Message) error { return nil }, mq.Group("billing"), h.Track("orders", "billing"))
	}()
	for i := 0; i < 200 && !connected(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.Check(ctx); err != nil || !connected() {
		t.Errorf("Check after subscribing again: got %v, %+v; want ready and connected", err, h.Snapshot())
	}
	cancel()
	<-done
}

// TestHealthAssignedWarning checks that a connected member with no
// partition is ready, with a warning in the JSON probe.
func TestHealthAssignedWarning(t *testing.T) {
	h := middleware.NewHealth(middleware.HealthOptions{})
	// The states a Kafka member reports, through the driver SDK.
	cfg, err := driver.NewSubscribeConfig("billing", mq.Latest, []mq.SubscribeOption{h.Track("orders", "billing")})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetAssigned(0)
	cfg.SetConnected(true)
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Ready         bool
		Subscriptions []struct {
			Connected *bool
			Assigned  int
			Warning   string
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !body.Ready || len(body.Subscriptions) != 1 {
		t.Fatalf("probe: got %d %+v, want 200, ready, one subscription", res.StatusCode, body)
	}
	s := body.Subscriptions[0]
	if s.Connected == nil || !*s.Connected || s.Assigned != 0 || !strings.Contains(s.Warning, "assigned no partition") {
		t.Errorf("probe subscription: got %+v, want connected, assigned 0, a warning", s)
	}
	cfg.SetAssigned(2)
	if subs, err := h.Check(context.Background()); err != nil || subs[0].Assigned != 2 || subs[0].Warning != "" {
		t.Errorf("Check with 2 partitions: got %+v, %v; want assigned 2, no warning", subs, err)
	}
}
