package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
)

// headerID is the Kafka header carrying Message.ID. Headers starting with
// mq.ReservedHeaderPrefix are the driver's and are removed on delivery.
const headerID = mq.ReservedHeaderPrefix + "id"

// Publish sends msgs to topic and returns nil once the brokers have
// acknowledged every one (with the default AcksAll: stored by every in-sync
// replica). It is safe for concurrent use: concurrent calls share produce
// requests per partition, and a lone call returns after about one round
// trip plus Config.BatchTimeout.
//
// Publish validates every message first (see mq.ValidateMessages, plus the
// encoded record size against the broker's message.max.bytes). A topic
// that does not exist is created unless provisioning is off, when Publish
// returns an error wrapping mq.ErrNotFound. Messages with a Key go to the
// partition Java's default partitioner would choose; the others to a
// random partition. If some messages are rejected, the error is a
// *mq.PublishError naming them. After Close, Publish returns mq.ErrClosed.
func (b *Broker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if b.isClosed() {
		return fmt.Errorf("kafka: publish: %w", mq.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateTopic(topic); err != nil {
		return err
	}
	if err := mq.ValidateMessages(msgs, b.caps.Limits()); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	kms := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		kms[i] = toKafka(topic, m)
		if n := recordBytes(&kms[i]); n > b.maxRecord {
			return fmt.Errorf("kafka: %w: message %d (id %q) encodes to up to %d bytes, more than the broker's message.max.bytes (%d)",
				mq.ErrMessageTooLarge, i, m.ID, n, b.maxRecord)
		}
	}
	if err := b.ensureTopic(ctx, topic, false); err != nil {
		return err
	}
	err := b.writer.WriteMessages(ctx, kms...)
	if err == nil {
		return nil
	}
	err = b.publishError(ctx, topic, msgs, err)
	if errors.Is(err, mq.ErrNotFound) {
		// The topic was deleted: look it up (and create it) again next time.
		b.topics.Delete(topic)
	}
	return err
}

// publishError maps the writer's error for the messages of one Publish.
func (b *Broker) publishError(ctx context.Context, topic string, msgs []*mq.Message, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("kafka: publish to %q: %w", topic, ctxErr)
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) && len(we) == len(msgs) {
		pe := &mq.PublishError{Total: len(msgs)}
		for i, e := range we {
			if e != nil {
				pe.Failures = append(pe.Failures, mq.PublishFailure{Index: i, ID: msgs[i].ID, Err: classify(e)})
			}
		}
		if len(pe.Failures) == 0 {
			return nil
		}
		return fmt.Errorf("kafka: publish to %q: %w", topic, pe)
	}
	return wrapErr(ctx, fmt.Sprintf("publish to %q", topic), err)
}

// toKafka converts m for the writer. The writer does not modify Key,
// Value or header values, so m's bytes are shared, not copied.
func toKafka(topic string, m *mq.Message) kafka.Message {
	km := kafka.Message{
		Topic:   topic,
		Value:   m.Body,
		Headers: make([]kafka.Header, 0, len(m.Header)+1),
	}
	if m.Key != "" {
		km.Key = []byte(m.Key)
	}
	km.Headers = append(km.Headers, kafka.Header{Key: headerID, Value: []byte(m.ID)})
	for k, v := range m.Header {
		km.Headers = append(km.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	return km
}

// recordBytes bounds from above the bytes km takes in a record batch of
// its own: the batch header, the record's fixed fields with varints at
// their widest for these sizes, key, value and headers.
func recordBytes(km *kafka.Message) int {
	n := batchOverhead + recordOverhead + len(km.Key) + len(km.Value)
	for _, h := range km.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}
