package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

func TestRecover(t *testing.T) {
	tests := []struct {
		name          string
		panicWith     any
		permanent     bool
		wantIs        error
		wantPermanent bool
	}{
		{"string panic", "kaput", false, nil, false},
		{"error panic is wrapped", errBoom, false, errBoom, false},
		{"Permanent option", "kaput", true, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := func(context.Context, *mq.Message) error { panic(tt.panicWith) }
			mw := middleware.Recover(middleware.RecoverOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Permanent: tt.permanent})
			err := mw(h)(context.Background(), &mq.Message{ID: "id-1", Topic: "t"})
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Fatalf("got %v, want an error saying the handler panicked", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got %v, want it to wrap %v", err, tt.wantIs)
			}
			if got := mq.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("IsPermanent: got %v, want %v", got, tt.wantPermanent)
			}
			if !strings.Contains(logs.String(), "id=id-1") || !strings.Contains(logs.String(), "stack=") {
				t.Errorf("got log %q, want the message id and the stack", logs.String())
			}
		})
	}
}

func TestRecoverLetsDeadLetterSeePanics(t *testing.T) {
	// A message that always panics reaches the dead-letter topic when
	// Recover is inside DeadLetter, instead of being redelivered forever.
	b := newBroker(t)
	topic := topicFor(t)
	dlq := newInbox()
	subscribe(t, b, middleware.DeadLetterTopic(topic), "g", dlq.handler(nil))
	stack := middleware.Chain(
		middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 2}),
		middleware.Recover(middleware.RecoverOptions{Logger: slog.New(slog.DiscardHandler)}),
	)
	subscribe(t, b, topic, "g", stack(func(context.Context, *mq.Message) error { panic("always") }), fast)
	publish(t, b, topic, mq.NewMessage([]byte("x")))
	got := dlq.waitFor(t, 1)
	if a := got[0].Header[middleware.HeaderAttempts]; a != "2" {
		t.Errorf("got %s=%q, want 2", middleware.HeaderAttempts, a)
	}
}
