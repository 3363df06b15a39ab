package sqs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Backlog returns the approximate backlog of topic's queue, which is one
// group: Messages is ApproximateNumberOfMessages plus
// ApproximateNumberOfMessagesNotVisible (received, not yet deleted) plus
// ApproximateNumberOfMessagesDelayed; InFlight the NotVisible count and
// Delayed the Delayed count. Approximate is true: SQS's counts are
// estimates that lag by up to a minute. It returns an error wrapping
// mq.ErrNotFound if the queue does not exist or its "mq-group" tag names
// another group (a queue is one group); it creates nothing.
func (b *Broker) Backlog(ctx context.Context, topic, group string) (mq.Backlog, error) {
	if err := driver.ValidateName("group", group); err != nil {
		return mq.Backlog{}, fmt.Errorf("sqs: %w", err)
	}
	if err := b.l.Err(); err != nil {
		return mq.Backlog{}, fmt.Errorf("sqs: Backlog: %w", err)
	}
	q, err := b.queue(ctx, topic, false)
	if err != nil {
		return mq.Backlog{}, err
	}
	known, err := b.claimGroup(ctx, q, "", false)
	if err != nil {
		return mq.Backlog{}, err
	}
	if known != "" && known != group {
		return mq.Backlog{}, fmt.Errorf("sqs: %w: queue %q of topic %q is consumed by group %q, not %q (a queue is one group)", mq.ErrNotFound, q.name, topic, known, group)
	}
	return b.queueBacklog(ctx, q, topic, group)
}

// queueBacklog reads the approximate counts of q, the queue of group on
// topic.
func (b *Broker) queueBacklog(ctx context.Context, q *queue, topic, group string) (mq.Backlog, error) {
	out, err := b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return mq.Backlog{}, wrapErr(ctx, "GetQueueAttributes "+q.name, err)
	}
	count := func(name types.QueueAttributeName) int64 {
		n, _ := strconv.ParseInt(out.Attributes[string(name)], 10, 64)
		return n
	}
	visible := count(types.QueueAttributeNameApproximateNumberOfMessages)
	hidden := count(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
	delayed := count(types.QueueAttributeNameApproximateNumberOfMessagesDelayed)
	return mq.Backlog{
		Topic:       topic,
		Group:       group,
		Messages:    visible + hidden + delayed,
		InFlight:    hidden,
		Delayed:     delayed,
		Approximate: true,
	}, nil
}
