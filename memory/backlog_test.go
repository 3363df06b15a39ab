package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

func TestBacklog(t *testing.T) {
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if err := mq.Provision(ctx, b, "t", "g"); err != nil {
		t.Fatal(err)
	}
	msgs := []*mq.Message{{Body: []byte("1")}, {Body: []byte("2")}, {Body: []byte("3"), Delay: 10 * time.Minute}}
	if err := b.Publish(ctx, "t", msgs...); err != nil {
		t.Fatal(err)
	}
	got, err := mq.BacklogOf(ctx, b, "t", "g")
	if err != nil {
		t.Fatalf("BacklogOf: %v", err)
	}
	if want := (mq.Backlog{Topic: "t", Group: "g", Messages: 3, InFlight: -1, Delayed: 1}); got.Topic != want.Topic ||
		got.Group != want.Group || got.Messages != want.Messages || got.InFlight != want.InFlight || got.Delayed != want.Delayed || got.Partitions != nil {
		t.Errorf("BacklogOf: got %+v, want %+v", got, want)
	}
	if _, err := mq.BacklogOf(ctx, b, "t", "nope"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf of a missing group: got %v, want ErrNotFound", err)
	}
	if err := mq.DeleteGroup(ctx, b, "t", "g"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if _, err := mq.BacklogOf(ctx, b, "t", "g"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf after DeleteGroup: got %v, want ErrNotFound", err)
	}
	if err := mq.DeleteGroup(ctx, b, "t", "g"); err != nil {
		t.Errorf("DeleteGroup of a missing group: got %v, want nil", err)
	}
	b.Close(ctx)
	if _, err := mq.BacklogOf(ctx, b, "t", "g"); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("BacklogOf after Close: got %v, want ErrClosed", err)
	}
}
