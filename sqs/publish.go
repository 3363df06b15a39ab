package sqs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

const (
	// maxBatch is SQS's limit of entries per batch call.
	maxBatch = 10
	// entryRetries is how often an entry SQS failed on its side (not the
	// sender's fault) is sent again before Publish reports it.
	entryRetries = 3
)

// Publish sends msgs to topic's queue and returns nil once SQS has
// accepted every one (a successful SendMessageBatch entry: SQS stores it
// redundantly before answering). It is safe for concurrent use: messages
// of concurrent calls to one topic are grouped into SendMessageBatch calls
// of up to ten messages within SQS's batch size limit, with up to
// Options.Senders calls in flight per queue and no timer, so a lone
// Publish is sent at once.
//
// The queue is created on first use unless provisioning is disabled, in
// which case a missing queue is mq.ErrNotFound. On a FIFO queue a message's
// Key is its MessageGroupId (an empty Key uses the message ID, so keyless
// messages are not ordered) and its ID the MessageDeduplicationId; a
// non-zero Delay is mq.ErrNotSupported there. On a standard queue Delay is
// rounded up to whole seconds (SQS's DelaySeconds), at most 15 minutes.
//
// Messages SQS rejects are reported in a *mq.PublishError; the others were
// accepted. After Close, Publish returns mq.ErrClosed.
func (b *Broker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := driver.CheckPublish(&b.l, topic, msgs, driver.LimitsOf(b.caps)); err != nil {
		if errors.Is(err, mq.ErrClosed) {
			return fmt.Errorf("sqs: Publish: %w", err)
		}
		return fmt.Errorf("sqs: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqs: Publish: %w", err)
	}
	if _, err := b.queueName(topic); err != nil {
		return err
	}
	for i, m := range msgs {
		if m.Delay > MaxDelay {
			return fmt.Errorf("sqs: %w: message %d has Delay %v, SQS allows at most %v", mq.ErrInvalidMessage, i, m.Delay, MaxDelay)
		}
	}
	q, err := b.queue(ctx, topic, !b.opts.NoProvision)
	if err != nil {
		return err
	}
	return q.pub.publish(ctx, msgs)
}

// publish encodes msgs, hands them to the send loops and waits until
// every one is accepted or failed.
func (p *publisher) publish(ctx context.Context, msgs []*mq.Message) error {
	b, q := p.b, p.q
	call := &pubCall{entries: make([]pubEntry, len(msgs)), done: make(chan struct{})}
	call.left.Store(int32(len(msgs)))
	for i, m := range msgs {
		if q.fifo && m.Delay > 0 {
			return fmt.Errorf("sqs: %w: message %d has Delay %v, but %q is a FIFO queue, which has no per-message delay", mq.ErrNotSupported, i, m.Delay, q.name)
		}
		ent := &call.entries[i]
		e := &ent.enc
		e.encode(m)
		if e.size > b.opts.ServerMaxBytes {
			return fmt.Errorf("sqs: %w: message %d (id %q) is %d bytes once encoded for SQS, the server's limit is %d", mq.ErrMessageTooLarge, i, m.ID, e.size, b.opts.ServerMaxBytes)
		}
		ent.call = call
		ent.ctx = ctx
		ent.req = types.SendMessageBatchRequestEntry{
			MessageBody:       &e.body,
			MessageAttributes: e.attrs,
		}
		if q.fifo {
			group := m.Key
			if group == "" {
				group = m.ID
			}
			ent.req.MessageGroupId = aws.String(fifoToken(group))
			ent.req.MessageDeduplicationId = aws.String(fifoToken(m.ID))
		} else if m.Delay > 0 {
			ent.req.DelaySeconds = int32((m.Delay + time.Second - 1) / time.Second)
		}
	}
	if err := p.enqueue(call); err != nil {
		return err
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return fmt.Errorf("sqs: Publish: %w", ctx.Err())
	}
	return call.result(msgs)
}

// fifoToken returns s if SQS accepts it as a MessageGroupId or
// MessageDeduplicationId (1 to 128 printable ASCII characters), and
// otherwise its SHA-256 in hex, which SQS accepts and which is as
// distinct as s.
func fifoToken(s string) string {
	ok := s != "" && len(s) <= 128
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] > ' ' && s[i] < 0x7f
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// pubCall is one Publish call waiting for its entries.
type pubCall struct {
	entries []pubEntry
	left    atomic.Int32
	done    chan struct{}
}

// pubEntry is one message of a pubCall.
type pubEntry struct {
	call *pubCall
	ctx  context.Context // the caller's: an entry whose caller gave up is not sent
	enc  encoded         // req points into it
	req  types.SendMessageBatchRequestEntry
	err  error
}

func (e *pubEntry) finish(err error) {
	e.err = err
	if e.call.left.Add(-1) == 0 {
		close(e.call.done)
	}
}

// result turns the entries' outcomes into Publish's error.
func (c *pubCall) result(msgs []*mq.Message) error {
	var pe mq.PublishError
	var first error
	same := true
	for i := range c.entries {
		err := c.entries[i].err
		if err == nil {
			continue
		}
		if first == nil {
			first = err
		} else if err != first {
			same = false
		}
		pe.Failures = append(pe.Failures, mq.PublishFailure{Index: i, ID: msgs[i].ID, Err: err})
	}
	switch {
	case len(pe.Failures) == 0:
		return nil
	case same && len(pe.Failures) == len(c.entries):
		return first // one failure of the whole call, such as a network error
	}
	pe.Total = len(c.entries)
	return &pe
}

// publisher groups one queue's pending entries into SendMessageBatch
// calls. Send loops start on demand, up to Options.Senders, and end when
// nothing is pending: while they are busy, new entries accumulate into
// the next batch (group commit), but a full batch never waits for a busy
// loop.
type publisher struct {
	b *Broker
	q *queue
	// batch, when set, sends a batch instead of SendMessageBatch to q:
	// PublishBatch to an SNS topic for sns+sqs (see sns_publish.go).
	batch func(ctx context.Context, entries []types.SendMessageBatchRequestEntry) (*sqs.SendMessageBatchOutput, error)

	mu      sync.Mutex
	pending []*pubEntry
	active  int // running send loops
	sending int // of which in a SendMessageBatch call
}

// enqueue adds call's entries and starts send loops as needed, as
// goroutines Close waits for. Once Close has begun no loop starts: the
// entries are sent if a loop is running, else enqueue takes them back and
// returns mq.ErrClosed.
func (p *publisher) enqueue(call *pubCall) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range call.entries {
		p.pending = append(p.pending, &call.entries[i])
	}
	// A FIFO queue gets one loop, so that batches reach SQS in the order
	// their messages were published.
	senders := p.b.opts.Senders
	if p.q.fifo {
		senders = 1
	}
	for p.active < senders && needLoop(len(p.pending), p.active, p.sending) {
		if !p.b.l.Go(p.loop) {
			break
		}
		p.active++ // before the loop's first take: p.mu is held
	}
	if p.active == 0 {
		// Close has begun and no loop runs, so nothing was pending before
		// these entries: a loop ends only once it finds none.
		p.pending = nil
		return fmt.Errorf("sqs: Publish: %w", mq.ErrClosed)
	}
	return nil
}

// needLoop reports whether pending entries need another batch loop
// (send or delete), given the loops running and how many of them are
// busy in a call: if none runs; if those running cannot take all that is
// pending in their next round; or if a full batch would wait for a busy
// loop, which gains nothing (it cannot grow), while a partial batch waits
// to grow with what comes meanwhile. Without the last rule, four
// publishers of ten messages each had only two calls in flight.
func needLoop(pending, active, busy int) bool {
	free := active - busy
	return active == 0 || active*maxBatch < pending || pending-free*maxBatch >= maxBatch
}

// take removes the next batch from pending: up to ten entries whose
// total size is within the server's limit. Entries whose caller's context
// has ended are finished with its error instead of being sent. sent says
// the calling loop comes back from sending the previous batch.
func (p *publisher) take(batch []*pubEntry, sent bool) []*pubEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sent {
		p.sending--
	}
	bytes, n := 0, 0
	for n < len(p.pending) && len(batch) < maxBatch {
		e := p.pending[n]
		if err := e.ctx.Err(); err != nil {
			e.finish(fmt.Errorf("sqs: Publish: %w", err))
			n++
			continue
		}
		if len(batch) > 0 && bytes+e.enc.size > p.b.opts.ServerMaxBytes {
			break
		}
		bytes += e.enc.size
		batch = append(batch, e)
		n++
	}
	clear(p.pending[:n])
	p.pending = p.pending[n:]
	if len(p.pending) == 0 {
		p.pending = nil
	}
	if len(batch) == 0 {
		p.active--
	} else {
		p.sending++
	}
	return batch
}

func (p *publisher) loop() {
	batch := make([]*pubEntry, 0, maxBatch)
	for sent := false; ; sent = true {
		batch = p.take(batch[:0], sent)
		if len(batch) == 0 {
			return
		}
		p.send(batch)
	}
}

// send sends batch with SendMessageBatch and finishes every entry,
// resending entries that failed on SQS's side a few times.
func (p *publisher) send(batch []*pubEntry) {
	ctx := p.b.base
	entries := make([]types.SendMessageBatchRequestEntry, 0, len(batch))
	var byID [maxBatch]*pubEntry // by entry Id, until its result is known
	for attempt := 0; len(batch) > 0; attempt++ {
		entries = entries[:0]
		clear(byID[:])
		for i, e := range batch {
			e.req.Id = batchID(i)
			entries = append(entries, e.req)
			byID[i] = e
		}
		var out *sqs.SendMessageBatchOutput
		var err error
		op := "SendMessageBatch"
		if p.batch != nil {
			op = "PublishBatch"
			out, err = p.batch(ctx, entries)
		} else {
			out, err = p.b.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(p.q.url), Entries: entries})
		}
		if err != nil {
			err = wrapErr(ctx, op+" to "+p.q.name, err)
			for _, e := range batch {
				e.finish(err)
			}
			return
		}
		result := func(id *string) *pubEntry { // the entry, once
			i := atoiID(id)
			if i < 0 || i >= len(byID) {
				return nil
			}
			e := byID[i]
			byID[i] = nil
			return e
		}
		for _, ok := range out.Successful {
			if e := result(ok.Id); e != nil {
				e.finish(nil)
			}
		}
		batch = batch[:0]
		for _, f := range out.Failed {
			e := result(f.Id)
			if e == nil {
				continue
			}
			err := fmt.Errorf("sqs: %s to %s: %s: %s", op, p.q.name, aws.ToString(f.Code), aws.ToString(f.Message))
			if f.SenderFault {
				e.finish(err)
				continue
			}
			if attempt+1 >= entryRetries || p.q.fifo { // a resend would overtake later messages
				e.finish(driver.Retryable(err))
				continue
			}
			batch = append(batch, e)
		}
		for _, e := range byID { // not in the answer at all
			if e == nil {
				continue
			}
			e.finish(driver.Retryable(fmt.Errorf("sqs: %s to %s: no result for the message", op, p.q.name)))
		}
		if len(batch) > 0 {
			t := time.NewTimer(time.Duration(50<<attempt) * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				for _, e := range batch {
					e.finish(fmt.Errorf("sqs: Publish: broker closed before SQS accepted the message: %w", mq.ErrClosed))
				}
				return
			}
		}
	}
}
