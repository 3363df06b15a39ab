package rabbitmq_test

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
	topic, group := uniqueTopic(t), "g"
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, topic, &mq.Message{Body: []byte("1")}, &mq.Message{Body: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	bl, err := mq.BacklogOf(ctx, b, topic, group)
	if err != nil {
		t.Fatalf("BacklogOf: %v", err)
	}
	if bl.Messages != 2 || bl.InFlight != -1 || bl.Partitions != nil || bl.Topic != topic || bl.Group != group {
		t.Errorf("BacklogOf: got %+v, want 2 ready messages, in-flight -1", bl)
	}
	if _, err := mq.BacklogOf(ctx, b, topic, "nope"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf of a missing group: got %v, want ErrNotFound", err)
	}
	// The failed passive declare closed only its own channel.
	if err := b.Publish(ctx, topic, &mq.Message{Body: []byte("3")}); err != nil {
		t.Fatalf("Publish after a BacklogOf of a missing queue: %v", err)
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
	// Provisioning again after the delete declares the queue again.
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatal(err)
	}
	if bl, err := mq.BacklogOf(ctx, b, topic, group); err != nil || bl.Messages != 0 {
		t.Errorf("BacklogOf of the group provisioned again: got %+v, %v; want 0", bl, err)
	}
}
