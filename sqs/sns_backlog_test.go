package sqs_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
)

// TestSNSBacklogAndDeleteGroup checks Backlog and DeleteGroup on sns+sqs:
// the backlog is the group's queue's, other groups are separate, and
// deleting a group removes its subscription and queue and leaves the
// topic and the other groups to producers.
func TestSNSBacklogAndDeleteGroup(t *testing.T) {
	b := newSNSBroker(t, nil, sqs.SNSOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := snsTopic(t)
	if _, err := mq.BacklogOf(ctx, b, topic, "billing"); !errors.Is(err, mq.ErrNotFound) {
		t.Fatalf("BacklogOf before the topic exists: got %v, want ErrNotFound", err)
	}
	if err := b.Provision(ctx, topic, "billing", "audit"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := b.Publish(ctx, topic, mq.NewMessage([]byte("1")), mq.NewMessage([]byte("2"))); err != nil {
		t.Fatal(err)
	}
	await := func(group string, want int64) mq.Backlog {
		t.Helper()
		var bl mq.Backlog
		for ctx.Err() == nil {
			var err error
			if bl, err = mq.BacklogOf(ctx, b, topic, group); err != nil {
				t.Fatalf("BacklogOf %s: %v", group, err)
			}
			if bl.Messages == want {
				return bl
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("BacklogOf %s: got %+v, want %d messages", group, bl, want)
		return bl
	}
	bl := await("billing", 2)
	if bl.Topic != topic || bl.Group != "billing" || !bl.Approximate || bl.InFlight != 0 {
		t.Errorf("BacklogOf: got %+v, want topic, group, approximate, none in flight", bl)
	}

	// A subscriber of audit takes its two; billing keeps its own.
	var handled atomic.Int32
	var connected atomic.Bool
	stop := subscribe(t, b, topic, func(context.Context, *mq.Message) error {
		handled.Add(1)
		return nil
	}, mq.Group("audit"), mq.WatchState(func(st mq.SubscriptionState) { connected.Store(st.Connected) }))
	await("audit", 0)
	if n := handled.Load(); n != 2 {
		t.Errorf("audit handled %d, want 2", n)
	}
	if !connected.Load() {
		t.Error("the sns+sqs subscription did not report itself connected while receiving")
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe: got %v, want context.Canceled", err)
	}
	await("billing", 2)

	if err := mq.DeleteGroup(ctx, b, topic, "billing"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if _, err := mq.BacklogOf(ctx, b, topic, "billing"); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("BacklogOf after DeleteGroup: got %v, want ErrNotFound", err)
	}
	if err := mq.DeleteGroup(ctx, b, topic, "billing"); err != nil {
		t.Errorf("DeleteGroup again: got %v, want nil", err)
	}
	// What producers need stays: the topic and the other group.
	snsc, sqsc := snsClients(t, nil)
	var arn string
	for p := awssns.NewListTopicsPaginator(snsc, &awssns.ListTopicsInput{}); p.HasMorePages() && arn == ""; {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range page.Topics {
			if a := aws.ToString(tp.TopicArn); strings.HasSuffix(a, ":"+topic) {
				arn = a
			}
		}
	}
	if arn == "" {
		t.Fatalf("SNS topic %s is gone after DeleteGroup", topic)
	}
	subs, err := snsc.ListSubscriptionsByTopic(ctx, &awssns.ListSubscriptionsByTopicInput{TopicArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if len(subs.Subscriptions) != 1 || !strings.HasSuffix(aws.ToString(subs.Subscriptions[0].Endpoint), ":"+topic+"-audit") {
		t.Errorf("subscriptions after DeleteGroup: got %d, want audit's only", len(subs.Subscriptions))
		for _, s := range subs.Subscriptions {
			t.Logf("  %s", aws.ToString(s.Endpoint))
		}
	}
	if _, err := sqsc.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic + "-billing")}); err == nil {
		t.Errorf("queue %s-billing still exists after DeleteGroup", topic)
	}
	if err := b.Publish(ctx, topic, mq.NewMessage([]byte("3"))); err != nil {
		t.Fatalf("Publish after DeleteGroup: %v", err)
	}
	await("audit", 1)
}
