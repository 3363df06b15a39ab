package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/segmentio/kafka-go/protocol"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Publish sends msgs to topic and returns nil once the brokers have
// acknowledged every one (with the default AcksAll: stored by every in-sync
// replica). It is safe for concurrent use. A Publish whose partitions have
// no request in flight is sent at once, so a lone call returns after one
// round trip; messages published while a partition's request is in
// flight go out together in its next request (see Publishing in the
// package documentation).
//
// Publish validates the topic and every message first (see
// driver.CheckPublish, plus Kafka's topic name rules and the encoded record
// size against the broker's message.max.bytes). A topic
// that does not exist is created unless provisioning is off, when Publish
// returns an error wrapping mq.ErrNotFound. Messages with a Key go to the
// partition Java's default partitioner would choose; the others to a
// partition with no request in flight. If some messages are rejected, the
// error is a *mq.PublishError naming them. When ctx ends first, Publish
// returns ctx's error; the messages may still be stored. After Close,
// Publish returns mq.ErrClosed.
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
	exit, err := b.life.Enter() // Close waits for running Publish calls
	if err != nil {
		return fmt.Errorf("kafka: publish: %w", err)
	}
	defer exit()
	call := newPublishCall(ctx, msgs)
	for i := range call.recs {
		if n := call.recs[i].size; n > b.maxRecord {
			return fmt.Errorf("kafka: %w: message %d (id %q) encodes to up to %d bytes, more than the broker's message.max.bytes (%d)",
				mq.ErrMessageTooLarge, i, msgs[i].ID, n, b.maxRecord)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if !known {
		if err := b.ensureTopic(ctx, topic, false); err != nil {
			return err
		}
	}
	tq, err := b.prod.queues(ctx, topic)
	if err != nil {
		return err
	}
	call.route(b.prod, tq)
	select {
	case <-call.done:
	case <-ctx.Done():
		return fmt.Errorf("kafka: publish to %q: %w", topic, ctx.Err())
	}
	err = call.result(topic)
	if errors.Is(err, mq.ErrNotFound) {
		// The topic was deleted: look it up (and create it) again next time.
		b.topics.Delete(topic)
		b.prod.forget(topic)
	}
	return err
}

// publishCall is one Publish call's records and what it waits for.
type publishCall struct {
	ctx  context.Context // the caller's: records of a call that returned are not sent
	recs []record
	left atomic.Int64  // records not yet settled
	done chan struct{} // closed when left reaches 0
}

// loneCallHeaders is how many headers (the ID header included) a call of
// one message can have and still take a single allocation.
const loneCallHeaders = 4

// loneCall is a publishCall of one message with room for its record and
// headers, so that the most common call allocates one object for all
// three.
type loneCall struct {
	publishCall
	rec  [1]record
	hdrs [loneCallHeaders]protocol.Header
}

// newPublishCall converts msgs into records. Their headers share one
// allocation; a call of one message with few headers allocates one
// object for the call, its record and their headers.
func newPublishCall(ctx context.Context, msgs []*mq.Message) *publishCall {
	total := len(msgs)
	for _, m := range msgs {
		total += len(m.Header)
	}
	var c *publishCall
	var hdrs []protocol.Header
	if len(msgs) == 1 && total <= loneCallHeaders {
		l := new(loneCall)
		c, hdrs = &l.publishCall, l.hdrs[:total]
		c.recs = l.rec[:]
	} else {
		c = &publishCall{recs: make([]record, len(msgs))}
		hdrs = make([]protocol.Header, total)
	}
	c.ctx, c.done = ctx, make(chan struct{})
	c.left.Store(int64(len(msgs)))
	used := 0
	for i, m := range msgs {
		n := len(m.Header) + 1
		r := &c.recs[i]
		newRecord(r, m, hdrs[used:used:used+n])
		used += n
		r.call, r.index = c, i
	}
	return c
}

// route hands the call's records to their partitions' queues: keyed
// records to the key's partition, the others together to one partition
// (see topicQueues.keyless). Consecutive records bound for the same
// partition are enqueued together.
func (c *publishCall) route(p *producer, tq *topicQueues) {
	var keyless *partQueue
	var buf [16]*record
	group := buf[:0]
	var at *partQueue
	for i := range c.recs {
		r := &c.recs[i]
		var q *partQueue
		if r.key != nil {
			q = tq.keyed(r.key)
		} else {
			if keyless == nil {
				keyless = tq.keyless()
			}
			q = keyless
		}
		if q != at && len(group) > 0 {
			p.enqueue(at, group)
			group = group[:0]
		}
		at = q
		group = append(group, r)
	}
	p.enqueue(at, group)
}

// settle records r's outcome. Each record is settled once.
func (c *publishCall) settle(r *record, err error) {
	r.err = err
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

// result is the call's error once every record is settled: nil when all
// were stored; the error itself when all failed alike; else a
// *mq.PublishError naming the failed messages.
func (c *publishCall) result(topic string) error {
	var first error
	same, failed := true, 0
	for i := range c.recs {
		err := c.recs[i].err
		if err == nil {
			same = false
			continue
		}
		failed++
		if first == nil {
			first = err
		} else if err != first {
			same = false
		}
	}
	switch {
	case failed == 0:
		return nil
	case same:
		return fmt.Errorf("kafka: publish to %q: %w", topic, first)
	}
	pe := &mq.PublishError{Total: len(c.recs)}
	for i := range c.recs {
		if err := c.recs[i].err; err != nil {
			pe.Failures = append(pe.Failures, mq.PublishFailure{Index: i, ID: c.recs[i].id, Err: err})
		}
	}
	return fmt.Errorf("kafka: publish to %q: %w", topic, pe)
}
