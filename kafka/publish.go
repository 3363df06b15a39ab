package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	err := b.write(ctx, topic, msgs, kms)
	if errors.Is(err, mq.ErrNotFound) {
		// The topic was deleted: look it up (and create it) again next time.
		b.topics.Delete(topic)
	}
	return err
}

// publishRetryFor bounds how long Publish keeps retrying messages that
// failed with retryable errors (no partition leader during an election or
// a broker restart, a dropped connection) on top of kafka-go's own
// retries. It covers the transport's metadata refresh interval (6s), after
// which a restarted broker's new leaders are known.
const publishRetryFor = 15 * time.Second

// write sends kms, retrying those that fail with retryable errors with
// backoff (100ms doubling to 1s) for up to publishRetryFor, bounded by
// ctx. A retried message may be stored twice if its first request
// reached the broker but the answer did not come back.
func (b *Broker) write(ctx context.Context, topic string, msgs []*mq.Message, kms []kafka.Message) error {
	deadline := time.Now().Add(publishRetryFor)
	delay := 100 * time.Millisecond
	idx := make([]int, len(kms)) // messages still to send
	for i := range idx {
		idx[i] = i
	}
	failed := map[int]error{}
	for {
		batch := kms
		if len(idx) < len(kms) {
			batch = make([]kafka.Message, len(idx))
			for j, i := range idx {
				batch[j] = kms[i]
			}
		}
		err := b.writer.WriteMessages(ctx, batch...)
		if err == nil {
			break
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("kafka: publish to %q: %w", topic, ctxErr)
		}
		var retry []int
		var we kafka.WriteErrors
		if errors.As(err, &we) && len(we) == len(batch) {
			for j, e := range we {
				if e == nil {
					continue
				}
				failed[idx[j]] = classify(e)
				if mq.IsRetryable(failed[idx[j]]) {
					retry = append(retry, idx[j])
				}
			}
		} else {
			// The whole call failed (metadata, closed writer...).
			whole := wrapErr(ctx, fmt.Sprintf("publish to %q", topic), err)
			if !mq.IsRetryable(whole) || time.Now().After(deadline) {
				if len(failed) == 0 {
					return whole
				}
				for _, i := range idx {
					failed[i] = whole
				}
				break
			}
			retry = idx
		}
		if len(retry) == 0 || time.Now().After(deadline) {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kafka: publish to %q: %w", topic, ctx.Err())
		}
		delay = min(2*delay, time.Second)
		for _, i := range retry {
			delete(failed, i)
		}
		idx = retry
	}
	if len(failed) == 0 {
		return nil
	}
	pe := &mq.PublishError{Total: len(msgs)}
	for i := range msgs {
		if e, ok := failed[i]; ok {
			pe.Failures = append(pe.Failures, mq.PublishFailure{Index: i, ID: msgs[i].ID, Err: e})
		}
	}
	return fmt.Errorf("kafka: publish to %q: %w", topic, pe)
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
