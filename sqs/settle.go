package sqs

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq/driver"
)

// settle records the outcome of h's handler, err, with SQS; the
// dispatcher calls it after each handler run, or with driver.ErrNotHandled
// for a delivery it releases unstarted. It returns the in-place retry the
// dispatcher should run, if any.
//
//   - Ack: the message's delete is queued (see ack).
//   - Release: the message is made visible again at once, or when the
//     delay of its pending in-place retry ends.
//   - Reject (mq.Permanent): the message goes to the queue's dead-letter
//     queue if its redrive policy names one, else it is dropped; either
//     way its delete is queued.
//   - Retry: the message is made visible again after the delay. A failed
//     FIFO message with a Key is retried in place instead: it stays held
//     (its visibility extended) and the dispatcher runs it again after the
//     delay, while the later messages of its Key wait in its lane (SQS
//     itself holds back the rest of its message group while it is in
//     flight). Making it visible again instead would force the later
//     messages received with it back to the queue too, counting receives
//     against messages whose handler never ran.
//
// A message that is no longer held returns its credit.
func (s *subscription) settle(h *held, err error) (time.Duration, bool) {
	outcome, delay := s.cfg.Classify(h.msg.Attempt, err)
	switch outcome {
	case driver.Ack:
		s.ack(h) // returns the credit
		return 0, false
	case driver.Release:
		s.mu.Lock()
		at := h.retryAt
		s.mu.Unlock()
		s.release(h, time.Until(at)) // a failed FIFO message keeps its delay
	case driver.Reject:
		if s.reject(h, err) {
			return 0, false
		}
	case driver.Retry:
		if h.lane != "" {
			s.mu.Lock()
			h.retryAt = time.Now().Add(delay)
			s.mu.Unlock()
			return delay, true
		}
		s.release(h, delay)
	}
	s.credits.give(1)
	return 0, false
}

// release makes h's message visible again after delay (rounded up to a
// whole second, at most 12 hours) and forgets it.
func (s *subscription) release(h *held, delay time.Duration) {
	if !s.forget(h) {
		return
	}
	s.unbatch(h)
	secs := int32(min(max(delay+time.Second-1, 0)/time.Second, maxVisibility/time.Second))
	ctx, cancel := context.WithTimeout(s.calls, callTimeout)
	defer cancel()
	s.hbMu.RLock()
	defer s.hbMu.RUnlock()
	_, err := s.b.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(s.q.url),
		ReceiptHandle:     h.sm.ReceiptHandle,
		VisibilityTimeout: secs,
	})
	if err != nil {
		s.b.log.Warn("sqs: could not make a message visible again; SQS redelivers it when its visibility timeout ends",
			"queue", s.q.name, "id", h.msg.ID, "error", wrapErr(ctx, "ChangeMessageVisibility", err))
	}
}

// forget removes h from the held set, reporting whether it was there.
func (s *subscription) forget(h *held) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.held[h.msg]
	delete(s.held, h.msg)
	if ok && h.batch.done != nil && h.batch.left.Add(-1) == 0 {
		close(h.batch.done)
	}
	return ok
}

// releaseAll makes every message still held visible again: those whose
// delete failed. Subscribe calls it last, once the dispatcher has settled
// every delivery and the deletes are done.
func (s *subscription) releaseAll() {
	s.mu.Lock()
	hs := make([]*held, 0, len(s.held))
	for _, h := range s.held {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	for _, h := range hs {
		s.release(h, 0)
	}
}

// reject handles a mq.Permanent failure. SQS has no reject: the driver
// sends the message (body and attributes as received) to the dead-letter
// queue of the queue's redrive policy, if it has one, and logs it with
// driver.LogDeadLettered; otherwise it logs it with driver.LogDropped.
// Either way it queues the message's delete and reports true. If sending
// to the dead-letter queue fails, it releases the message to be
// redelivered after its Backoff delay and reports false.
func (s *subscription) reject(h *held, cause error) bool {
	if s.dlq == "" {
		driver.LogDropped(s.b.log, "sqs", h.msg, cause)
		s.ack(h)
		return true
	}
	ctx, cancel := context.WithTimeout(s.b.base, callTimeout)
	defer cancel()
	in := &sqs.SendMessageInput{
		QueueUrl:          aws.String(s.dlq),
		MessageBody:       h.sm.Body,
		MessageAttributes: h.sm.MessageAttributes,
	}
	if isFIFOURL(s.dlq) {
		group := h.sm.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
		if group == "" {
			group = aws.ToString(h.sm.MessageId)
		}
		in.MessageGroupId = aws.String(group)
		in.MessageDeduplicationId = h.sm.MessageId
	}
	if _, err := s.b.client.SendMessage(ctx, in); err != nil {
		s.b.log.Error("sqs: handler returned a permanent error, but moving the message to the dead-letter queue failed; it will be redelivered",
			"queue", s.q.name, "id", h.msg.ID, "attempt", h.msg.Attempt, "error", cause,
			"dead_letter_queue", s.dlq, "send_error", wrapErr(ctx, "SendMessage", err))
		s.release(h, s.cfg.RedeliveryDelay(h.msg.Attempt, cause))
		return false
	}
	driver.LogDeadLettered(s.b.log, "sqs", h.msg, s.dlq, cause)
	s.ack(h)
	return true
}

func isFIFOURL(u string) bool {
	return len(u) > len(fifoSuffix) && u[len(u)-len(fifoSuffix):] == fifoSuffix
}
