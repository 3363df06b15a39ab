package sqs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Backlog returns the approximate backlog of group on topic: the counts
// of the group's queue, {topic}-{group}, as Broker.Backlog reads them
// (ApproximateNumberOfMessages + NotVisible + Delayed). It returns an
// error wrapping mq.ErrNotFound if the topic, the queue or its
// subscription to the topic does not exist, and creates nothing.
func (s *SNSBroker) Backlog(ctx context.Context, topic, group string) (mq.Backlog, error) {
	if err := driver.ValidateName("group", group); err != nil {
		return mq.Backlog{}, fmt.Errorf("sqs: %w", err)
	}
	if err := s.b.l.Err(); err != nil {
		return mq.Backlog{}, fmt.Errorf("sqs: Backlog: %w", err)
	}
	g, err := s.group(ctx, topic, group, false)
	if err != nil {
		return mq.Backlog{}, err
	}
	bl, err := s.b.queueBacklog(ctx, g.q, topic, group)
	if isQueueMissing(err) {
		// Deleted behind this broker's back since it was looked up.
		s.forget(topic, group)
		return mq.Backlog{}, fmt.Errorf("sqs: %w: queue %q of group %q on topic %q does not exist", mq.ErrNotFound, g.q.name, group, topic)
	}
	return bl, err
}

// DeleteGroup removes group from topic: it unsubscribes the group's
// queue from the SNS topic, then deletes the queue with the messages in
// it. The topic, other groups' queues and the dead-letter queue named in
// the options stay: producers need nothing that is removed. Deleting a
// group that does not exist returns nil. Subscriptions still running on
// the group see their queue vanish: their receives fail, which stops them.
// SQS may refuse to create a queue of the same name for 60 seconds after
// the delete.
func (s *SNSBroker) DeleteGroup(ctx context.Context, topic, group string) error {
	if err := driver.ValidateName("group", group); err != nil {
		return fmt.Errorf("sqs: %w", err)
	}
	if err := s.b.l.Err(); err != nil {
		return fmt.Errorf("sqs: DeleteGroup: %w", err)
	}
	name, err := s.queueName(topic, group)
	if err != nil {
		return err
	}
	b := s.b
	defer s.forget(topic, group)
	url, err := b.queueURL(ctx, name)
	if isQueueMissing(err) {
		return nil
	}
	if err != nil {
		return wrapErr(ctx, "queue "+name, err)
	}
	attrs, err := b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil && !isQueueMissing(err) {
		return wrapErr(ctx, "GetQueueAttributes "+name, err)
	}
	if err == nil {
		// Unsubscribe first, so that the topic never delivers to a queue
		// that is gone (SNS would keep trying).
		queueARN := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
		t, err := s.topic(ctx, topic, false)
		switch {
		case err == nil:
			sub, err := s.findSubscription(ctx, t, queueARN)
			if err != nil {
				return err
			}
			if sub != "" {
				if _, err := s.sns.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: aws.String(sub)}); err != nil && !isSNSNotFound(err) {
					return wrapSNSErr(ctx, "Unsubscribe "+name+" from "+t.name, err)
				}
			}
		case !errors.Is(err, mq.ErrNotFound):
			return err
		}
	}
	if _, err := b.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil && !isQueueMissing(err) {
		return wrapErr(ctx, "DeleteQueue "+name, err)
	}
	return nil
}

// forget drops what s remembers of group's queue on topic.
func (s *SNSBroker) forget(topic, group string) {
	s.mu.Lock()
	delete(s.groups, [2]string{topic, group})
	s.mu.Unlock()
}
