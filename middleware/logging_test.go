package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

// lines decodes JSON log lines.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogging(t *testing.T) {
	msg := &mq.Message{ID: "id-1", Topic: "orders", Group: "billing", Attempt: 3, Body: []byte("secret card number")}
	tests := []struct {
		name      string
		opts      middleware.LoggingOptions
		err       error
		wantLines int
		wantLevel string
		wantMsg   string
		wantBody  bool
	}{
		{"success is silent", middleware.LoggingOptions{}, nil, 0, "", "", false},
		{"success when asked", middleware.LoggingOptions{Success: true}, nil, 1, "DEBUG", "mq: message handled", false},
		{"failure", middleware.LoggingOptions{}, errBoom, 1, "WARN", "mq: handler failed; the message will be redelivered", false},
		{"permanent", middleware.LoggingOptions{}, mq.Permanent(errBoom), 1, "ERROR", "mq: handler failed permanently; the message will not be redelivered", false},
		{"custom level", middleware.LoggingOptions{Level: slog.LevelInfo}, errBoom, 1, "INFO", "mq: handler failed; the message will be redelivered", false},
		{"body when asked", middleware.LoggingOptions{Body: true}, errBoom, 1, "WARN", "mq: handler failed; the message will be redelivered", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.opts.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			err := middleware.Logging(tt.opts)(func(context.Context, *mq.Message) error { return tt.err })(context.Background(), msg)
			if !errors.Is(err, tt.err) {
				t.Errorf("got %v, want the handler's %v", err, tt.err)
			}
			got := lines(t, &buf)
			if len(got) != tt.wantLines {
				t.Fatalf("got %d lines %v, want %d", len(got), got, tt.wantLines)
			}
			if tt.wantLines == 0 {
				return
			}
			l := got[0]
			if l["level"] != tt.wantLevel || l["msg"] != tt.wantMsg {
				t.Errorf("got level %v msg %q, want %s %q", l["level"], l["msg"], tt.wantLevel, tt.wantMsg)
			}
			for k, v := range map[string]any{"id": "id-1", "topic": "orders", "group": "billing", "attempt": 3.0} {
				if l[k] != v {
					t.Errorf("field %s: got %v, want %v", k, l[k], v)
				}
			}
			if tt.err != nil && l["error"] != tt.err.Error() {
				t.Errorf("field error: got %v, want %q", l["error"], tt.err.Error())
			}
			if _, has := l["body"]; has != tt.wantBody || strings.Contains(buf.String(), "secret") != tt.wantBody {
				t.Errorf("body logged: got %v, want %v", has, tt.wantBody)
			}
		})
	}
}

func TestLoggingDeadLetter(t *testing.T) {
	var buf bytes.Buffer
	b := newBroker(t)
	topic := topicFor(t)
	stack := middleware.Chain(
		middleware.Logging(middleware.LoggingOptions{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}),
		middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b}),
	)
	err := stack(func(context.Context, *mq.Message) error { return mq.Permanent(errBoom) })(context.Background(), &mq.Message{ID: "x", Topic: topic, Attempt: 1})
	if err != nil {
		t.Fatalf("got %v, want nil (dead-lettered, so acknowledged)", err)
	}
	got := lines(t, &buf)
	if len(got) != 1 || got[0]["msg"] != "mq: message dead-lettered" || got[0]["dlq"] != middleware.DeadLetterTopic(topic) || got[0]["error"] != "permanent: boom" {
		t.Errorf("got %v, want one dead-letter line naming the dead-letter topic and the cause", got)
	}

	buf.Reset()
	b.InjectPublishErrors(errors.New("down"))
	err = stack(func(context.Context, *mq.Message) error { return mq.Permanent(errBoom) })(context.Background(), &mq.Message{ID: "x", Topic: topic, Attempt: 1})
	if err == nil || mq.IsPermanent(err) {
		t.Fatalf("got %v, want a non-permanent error so the message is redelivered", err)
	}
	got = lines(t, &buf)
	if len(got) != 1 || got[0]["level"] != "ERROR" || !strings.Contains(got[0]["msg"].(string), "dead-letter publish failed") {
		t.Errorf("got %v, want one error line saying the dead-letter publish failed", got)
	}
}
