package kafka_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func TestBacklog(t *testing.T) {
	b := open(t, "")
	ctx := ctxFor(t, 2*time.Minute)
	topic, group := uniqueName(t, "t"), "g"
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*mq.Message, 6)
	for i := range msgs {
		msgs[i] = &mq.Message{Key: string(rune('a' + i)), Body: []byte("x")}
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	bl, err := mq.BacklogOf(ctx, b, topic, group)
	if err != nil {
		t.Fatalf("BacklogOf: %v", err)
	}
	var sum int64
	for _, p := range bl.Partitions {
		if p.Committed < 0 || p.Lag != p.End-p.Committed {
			t.Errorf("partition %+v: want committed >= 0 and lag = end - committed", p)
		}
		sum += p.Lag
	}
	if bl.Messages != 6 || sum != 6 || bl.InFlight != -1 || len(bl.Partitions) == 0 {
		t.Errorf("BacklogOf: got %+v, want 6 messages over the partitions, in-flight -1", bl)
	}

	// Handled and committed, the backlog is gone.
	var n atomic.Int32
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(sctx, topic, func(context.Context, *mq.Message) error {
			if n.Add(1) == 6 {
				cancel()
			}
			return nil
		}, mq.Group(group))
	}()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe: %v", err)
	}
	if bl, err := mq.BacklogOf(ctx, b, topic, group); err != nil || bl.Messages != 0 {
		t.Errorf("BacklogOf after handling everything: got %+v, %v; want 0 messages", bl, err)
	}

	if _, err := mq.BacklogOf(ctx, b, topic, "nope"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf of a group without offsets: got %v, want ErrNotFound", err)
	}
	if _, err := mq.BacklogOf(ctx, b, uniqueName(t, "missing"), group); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf of a missing topic: got %v, want ErrNotFound", err)
	}
	if err := mq.DeleteGroup(ctx, b, topic, group); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if _, err := mq.BacklogOf(ctx, b, topic, group); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf after DeleteGroup: got %v, want ErrNotFound", err)
	}
	if err := mq.DeleteGroup(ctx, b, topic, group); err != nil {
		t.Errorf("DeleteGroup of a missing group: got %v, want nil", err)
	}
}
