package sqs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Publish sends msgs to topic's SNS topic and returns nil once SNS has
// accepted every one (a successful PublishBatch entry), which it then
// delivers to the queue of every group subscribed at that moment. It is
// safe for concurrent use and batches as Broker.Publish does, with
// PublishBatch calls of up to ten messages and 256 KiB; messages are
// encoded as for SQS (see the package documentation), so that at most
// ten message attributes go to SNS, and checked against SNS's size limit
// before anything is sent.
//
// The topic is created on first use unless provisioning is disabled, in
// which case a missing topic is mq.ErrNotFound. A topic that no group's
// queue is subscribed to drops what is published to it. On a FIFO topic a
// message's Key is its MessageGroupId (an empty Key uses the message ID)
// and its ID the MessageDeduplicationId. A non-zero Delay is
// mq.ErrNotSupported: SNS has no per-message delay.
//
// Messages SNS rejects are reported in a *mq.PublishError; the others were
// accepted. After Close, Publish returns mq.ErrClosed.
func (s *SNSBroker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := driver.CheckPublish(&s.b.l, topic, msgs, driver.LimitsOf(s.caps)); err != nil {
		if errors.Is(err, mq.ErrClosed) {
			return fmt.Errorf("sqs: Publish: %w", err)
		}
		return fmt.Errorf("sqs: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqs: Publish: %w", err)
	}
	if _, err := s.topicName(topic); err != nil {
		return err
	}
	t, err := s.topic(ctx, topic, !s.opts.NoProvision)
	if err != nil {
		return err
	}
	return t.pub.publish(ctx, msgs)
}

// publishBatch sends a batch, built as for SendMessageBatch, with SNS's
// PublishBatch to topicARN, and answers as SendMessageBatch would, so
// that the publisher's partial-failure handling applies unchanged.
func (s *SNSBroker) publishBatch(ctx context.Context, topicARN string, entries []types.SendMessageBatchRequestEntry) (*sqs.SendMessageBatchOutput, error) {
	out, err := s.sns.PublishBatch(ctx, &sns.PublishBatchInput{
		TopicArn:                   aws.String(topicARN),
		PublishBatchRequestEntries: snsEntries(entries),
	})
	if err != nil {
		return nil, err
	}
	res := &sqs.SendMessageBatchOutput{
		Successful: make([]types.SendMessageBatchResultEntry, len(out.Successful)),
		Failed:     make([]types.BatchResultErrorEntry, len(out.Failed)),
	}
	for i, ok := range out.Successful {
		res.Successful[i] = types.SendMessageBatchResultEntry{Id: ok.Id, MessageId: ok.MessageId}
	}
	for i, f := range out.Failed {
		res.Failed[i] = types.BatchResultErrorEntry{Id: f.Id, Code: f.Code, Message: f.Message, SenderFault: f.SenderFault}
	}
	return res, nil
}

// snsEntries maps SendMessageBatch entries to PublishBatch entries: the
// body becomes the SNS message, attributes keep their names, types and
// values, and the FIFO group and deduplication IDs carry over. With raw
// message delivery SNS hands them to each subscribed queue as they are.
func snsEntries(entries []types.SendMessageBatchRequestEntry) []snstypes.PublishBatchRequestEntry {
	out := make([]snstypes.PublishBatchRequestEntry, len(entries))
	for i, e := range entries {
		attrs := make(map[string]snstypes.MessageAttributeValue, len(e.MessageAttributes))
		for k, v := range e.MessageAttributes {
			attrs[k] = snstypes.MessageAttributeValue{DataType: v.DataType, StringValue: v.StringValue, BinaryValue: v.BinaryValue}
		}
		out[i] = snstypes.PublishBatchRequestEntry{
			Id:                     e.Id,
			Message:                e.MessageBody,
			MessageAttributes:      attrs,
			MessageGroupId:         e.MessageGroupId,
			MessageDeduplicationId: e.MessageDeduplicationId,
		}
	}
	return out
}
