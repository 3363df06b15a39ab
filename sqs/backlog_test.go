package sqs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func TestBacklog(t *testing.T) {
	b := open(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := topic(t)
	if err := mq.Provision(ctx, b, q, "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, q, &mq.Message{Body: []byte("1")}, &mq.Message{Body: []byte("2")}, &mq.Message{Body: []byte("3"), Delay: time.Minute}); err != nil {
		t.Fatal(err)
	}
	var bl mq.Backlog
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		bl, err = mq.BacklogOf(ctx, b, q, "g")
		if err != nil {
			t.Fatalf("BacklogOf: %v", err)
		}
		if bl.Messages == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if bl.Messages != 3 || bl.Delayed != 1 || bl.InFlight != 0 || !bl.Approximate {
		t.Errorf("BacklogOf: got %+v, want 3 messages, 1 delayed, 0 in flight, approximate", bl)
	}
	if _, err := mq.BacklogOf(ctx, b, q, "other"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf of another group: got %v, want ErrNotFound (a queue is one group)", err)
	}
	if _, err := mq.BacklogOf(ctx, b, topic(t), "g"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf of a missing queue: got %v, want ErrNotFound", err)
	}
	if err := mq.DeleteGroup(ctx, b, q, "g"); !errors.Is(err, mq.ErrNotSupported) {
		t.Errorf("DeleteGroup: got %v, want ErrNotSupported (the queue is the topic)", err)
	}
}
