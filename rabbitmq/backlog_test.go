package rabbitmq_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
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
	if !strings.Contains(bl.Note, "management=") {
		t.Errorf("BacklogOf without the management API: got note %q, want one saying how to count unacknowledged messages", bl.Note)
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

// TestBacklogManagement checks that with the management API, Backlog
// counts the three states a group's message can be in: ready, delivered
// and not acknowledged, and waiting in a delay queue after a nack.
func TestBacklogManagement(t *testing.T) {
	mgmt := rabbitmqtest.ManagementURL(t)
	b := open(t, "prefetch=1&management="+url.QueryEscape(mgmt))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic, group := uniqueTopic(t), "g"
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"delay", "hold", "wait"} {
		if err := b.Publish(ctx, topic, &mq.Message{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	subscribe(t, b, topic, func(ctx context.Context, m *mq.Message) error {
		switch string(m.Body) {
		case "delay":
			return mq.RetryAfter(errors.New("later"), time.Hour)
		case "hold":
			select {
			case held <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return ctx.Err()
		}
		return errors.New("not yet")
	}, mq.Group(group), mq.Concurrency(1))
	defer close(release)
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the handler never got the second message")
	}
	// The plugin samples queues every few seconds: read until the counts
	// settle, bounded by ctx.
	var bl mq.Backlog
	for i := 0; i < 60; i++ {
		var err error
		bl, err = mq.BacklogOf(ctx, b, topic, group)
		if err != nil {
			t.Fatalf("BacklogOf: %v", err)
		}
		if bl.Messages == 3 && bl.InFlight == 1 && bl.Delayed == 1 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if bl.Messages != 3 || bl.InFlight != 1 || bl.Delayed != 1 || !bl.Approximate || bl.Note != "" {
		t.Errorf("BacklogOf: got %+v, want 3 messages: 1 ready, 1 in flight, 1 delayed, approximate, no note", bl)
	}
	if _, err := mq.BacklogOf(ctx, b, topic, "nope"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf of a missing group: got %v, want ErrNotFound", err)
	}
}

func TestManagementURLChecked(t *testing.T) {
	const secret = "s3cr3t-pw"
	for _, tc := range []struct{ name, value, want string }{
		{"user info", "http://admin:" + secret + "@127.0.0.1:15672", "user info"},
		{"scheme", "amqp://127.0.0.1:15672", "scheme"},
		{"no host", "http:///api", "no host"},
		{"query", "http://127.0.0.1:15672/?x=1", "query"},
		{"not a URL", "http://[::1", "not a URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := "amqp://guest:" + secret + "@127.0.0.1:1/?management=" + url.QueryEscape(tc.value)
			_, err := mq.Open(context.Background(), u)
			if !errors.Is(err, mq.ErrInvalidURL) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "management") {
				t.Fatalf("Open: got %v, want ErrInvalidURL naming management and %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open: the error %q shows the password", err)
			}
		})
	}
}
