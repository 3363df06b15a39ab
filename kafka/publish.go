package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Publish sends msgs to topic and returns nil once the brokers have
// acknowledged every one (with the default AcksAll: stored by every in-sync
// replica). It is safe for concurrent use: concurrent calls share produce
// requests per partition, and a lone call returns after about one round
// trip plus Options.BatchTimeout.
//
// Publish validates the topic and every message first (see
// driver.CheckPublish, plus Kafka's topic name rules and the encoded record
// size against the broker's message.max.bytes). A topic
// that does not exist is created unless provisioning is off, when Publish
// returns an error wrapping mq.ErrNotFound. Messages with a Key go to the
// partition Java's default partitioner would choose; the others to a
// random partition. If some messages are rejected, the error is a
// *mq.PublishError naming them. After Close, Publish returns mq.ErrClosed.
func (b *Broker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := driver.CheckPublish(&b.life, topic, msgs, driver.LimitsOf(b.caps)); err != nil {
		if errors.Is(err, mq.ErrClosed) {
			return fmt.Errorf("kafka: publish: %w", err)
		}
		return fmt.Errorf("kafka: %w", err)
	}
	// A topic ensureTopic stored is known to be valid and to exist.
	_, known := b.topics.Load(topic)
	if !known {
		if err := validateTopic(topic); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := getPublishBuf(msgs)
	kms := buf.kms
	for i, m := range msgs {
		kms[i] = toKafka(topic, m, buf.take(len(m.Header)+1))
		if n := recordBytes(&kms[i]); n > b.maxRecord {
			buf.release()
			return fmt.Errorf("kafka: %w: message %d (id %q) encodes to up to %d bytes, more than the broker's message.max.bytes (%d)",
				mq.ErrMessageTooLarge, i, m.ID, n, b.maxRecord)
		}
	}
	if !known {
		if err := b.ensureTopic(ctx, topic, false); err != nil {
			buf.release()
			return err
		}
	}
	err := b.write(ctx, topic, msgs, kms)
	if err == nil {
		// Every produce request ended: the writer holds no reference to
		// the buffers any more. After a failure some may still be queued
		// (ctx ended while they waited), so the buffers are left to the GC.
		buf.release()
	}
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

// publishBuf holds one Publish call's converted messages and their
// headers. Publish reuses it once the writer is done with it, so that a
// message costs no allocation of its own to convert.
type publishBuf struct {
	kms  []kafka.Message
	hdrs []kafka.Header // backing array handed out by take
	used int            // hdrs handed out so far
}

// maxPooledHeaders bounds the buffers Publish keeps for reuse, so that one
// large batch does not keep its memory for good.
const maxPooledHeaders = 1024

var publishBufs = sync.Pool{New: func() any { return new(publishBuf) }}

// getPublishBuf returns a buffer with one kafka.Message per message and
// room for their headers plus one ID header each.
func getPublishBuf(msgs []*mq.Message) *publishBuf {
	n := len(msgs)
	buf := publishBufs.Get().(*publishBuf)
	buf.kms = slices.Grow(buf.kms[:0], n)[:n]
	total := n
	for _, m := range msgs {
		total += len(m.Header)
	}
	buf.hdrs = slices.Grow(buf.hdrs[:0], total)[:total]
	buf.used = 0
	return buf
}

// take hands out room for n headers: an empty slice with capacity n, so
// appends to it cannot reach another message's headers. If the buffer has
// no room left (a header map grew meanwhile, which the contract forbids),
// appends allocate instead.
func (buf *publishBuf) take(n int) []kafka.Header {
	if buf.used+n > len(buf.hdrs) {
		return nil
	}
	h := buf.hdrs[buf.used : buf.used : buf.used+n]
	buf.used += n
	return h
}

// release clears the buffer (dropping references to message bodies) and
// puts it back for reuse. Nothing may use it afterwards.
func (buf *publishBuf) release() {
	if cap(buf.hdrs) > maxPooledHeaders {
		return
	}
	clear(buf.kms)
	clear(buf.hdrs[:buf.used])
	publishBufs.Put(buf)
}
