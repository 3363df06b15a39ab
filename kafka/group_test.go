package kafka_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestIdleMemberLogsAtInfo: a member assigned no partition says so at
// info level with the member and partition counts (issue 17: a member
// left without partitions idled with only a debug line).
func TestIdleMemberLogsAtInfo(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	var logs syncBuffer
	o := newOptions(t)
	o.Partitions = 1
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b, err := kafka.New(ctx, o)
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	topic, group := uniqueName(t, "idle"), uniqueName(t, "g")
	if err := b.Provision(ctx, topic, group); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	h := func(context.Context, *mq.Message) error { return nil }
	subscribe(t, b, topic, h, mq.Group(group))
	subscribe(t, b, topic, h, mq.Group(group))
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=INFO") && strings.Contains(line, "assigned no partition") &&
				strings.Contains(line, "partitions=1") && strings.Contains(line, "members=2") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no info line about the idle member with partitions=1 members=2 within 60s; log:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
