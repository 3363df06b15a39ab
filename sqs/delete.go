package sqs

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
)

// ack queues h's delete. The message stays held (its visibility
// extended) until the delete is done, but its credit comes back at once,
// so receivers go on fetching, unless delLimit acknowledged messages
// already wait for their delete: then the credit comes back with the
// delete, which bounds what a slow or failing DeleteMessageBatch lets
// pile up.
//
// The delete waits for the rest of h's receive batch to be acknowledged
// or released, so that the batch takes one DeleteMessageBatch, as in a
// plain receive-handle-delete loop: each call costs about as much client
// CPU as the messages it carries. The wait is bounded by deleteWait and
// ends when the subscription stops.
func (s *subscription) ack(h *held) {
	s.delMu.Lock()
	s.delHeld++
	h.owes = s.delHeld > s.delLimit
	h.acked = true
	owes := h.owes
	b := h.batch
	b.open--
	switch {
	case s.delDirect:
		s.queueDeletes(h)
	default:
		b.acked = append(b.acked, h)
		if b.open == 0 {
			s.flushBatch(b)
		} else if b.wait == nil {
			s.delWaiting[b] = struct{}{}
			b.wait = time.AfterFunc(deleteWait, func() {
				s.delMu.Lock()
				defer s.delMu.Unlock()
				s.flushBatch(b)
			})
		}
	}
	s.delMu.Unlock()
	if !owes {
		s.credits.give(1)
	}
}

// unbatch records that h, released rather than acknowledged, no longer
// holds back the deletes of its receive batch.
func (s *subscription) unbatch(h *held) {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	if h.acked {
		return
	}
	b := h.batch
	b.open--
	if b.open == 0 {
		s.flushBatch(b)
	}
}

// flushBatch queues the deletes of b's acknowledged messages waiting for
// the rest of b. s.delMu must be held.
func (s *subscription) flushBatch(b *recvBatch) {
	if b.wait != nil {
		b.wait.Stop() // if it fired already, its flushBatch finds b empty or flushes later acks early
		b.wait = nil
	}
	delete(s.delWaiting, b)
	if len(b.acked) == 0 {
		return
	}
	s.queueDeletes(b.acked...)
	clear(b.acked)
	b.acked = b.acked[:0]
}

// flushBatches queues every waiting delete, and from now on acknowledged
// messages do not wait for their receive batch. Subscribe calls it once
// no more handler runs.
func (s *subscription) flushBatches() {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	s.delDirect = true
	for b := range s.delWaiting {
		s.flushBatch(b)
	}
}

// queueDeletes adds hs to the pending deletes, starting a delete loop if
// needLoop says so. s.delMu must be held.
func (s *subscription) queueDeletes(hs ...*held) {
	s.delPending = append(s.delPending, hs...)
	if s.delActive < max(2, s.receivers) && needLoop(len(s.delPending), s.delActive, s.delBusy) {
		s.delActive++
		s.delWG.Add(1)
		go s.deleteLoop()
	}
}

// deleteWait bounds how long an acknowledged message's delete waits for
// the rest of its receive batch. It is well under a third of
// claimTimeout, so the wait costs no visibility extension, and it only
// delays deletes (the messages stay held meanwhile), never a handler, a
// receive or Close.
const deleteWait = 100 * time.Millisecond

// deleteLoop deletes pending acknowledged messages in batches of up to
// ten until none is pending, returning the credits still owed.
func (s *subscription) deleteLoop() {
	defer s.delWG.Done()
	batch := make([]*held, 0, maxBatch)
	for {
		s.delMu.Lock()
		n := min(len(s.delPending), maxBatch)
		if n == 0 {
			s.delActive--
			s.delPending = nil
			s.delMu.Unlock()
			return
		}
		batch = append(batch[:0], s.delPending[:n]...)
		clear(s.delPending[:n])
		s.delPending = s.delPending[n:]
		s.delBusy++
		s.delMu.Unlock()
		s.deleteBatch(batch)
		owed := 0
		s.delMu.Lock()
		s.delBusy--
		s.delHeld -= len(batch)
		for _, h := range batch {
			if h.owes {
				owed++
			}
		}
		s.delMu.Unlock()
		s.credits.give(owed)
	}
}

// deleteBatch deletes batch, retrying transient failures while the
// visibility heartbeat keeps the messages hidden, up to about one
// visibility timeout.
func (s *subscription) deleteBatch(batch []*held) {
	b := s.b
	backoff := mq.ExponentialBackoff(100*time.Millisecond, 5*time.Second)
	deadline := time.Now().Add(b.opts.VisibilityTimeout)
	entries := make([]types.DeleteMessageBatchRequestEntry, 0, len(batch))
	for attempt := 1; len(batch) > 0; attempt++ {
		entries = entries[:0]
		for i, h := range batch {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: batchID(i), ReceiptHandle: h.sm.ReceiptHandle})
		}
		ctx, cancel := context.WithTimeout(s.calls, callTimeout)
		out, err := b.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.q.url), Entries: entries})
		cancel()
		var retry []*held
		if err != nil {
			err = wrapErr(ctx, "DeleteMessageBatch on "+s.q.name, err)
			if !mq.IsRetryable(err) || time.Now().After(deadline) || s.calls.Err() != nil {
				b.log.Warn("sqs: could not delete handled messages; SQS will redeliver them", "queue", s.q.name, "count", len(batch), "error", err)
				for _, h := range batch {
					s.forget(h)
				}
				return
			}
			retry = batch
		} else {
			for _, ok := range out.Successful {
				if i := atoiID(ok.Id); i >= 0 && i < len(batch) {
					s.forget(batch[i])
				}
			}
			for _, f := range out.Failed {
				i := atoiID(f.Id)
				if i < 0 || i >= len(batch) {
					continue
				}
				if f.SenderFault || time.Now().After(deadline) {
					// Typically an expired receipt handle: the message's
					// visibility ran out and SQS may deliver it again.
					b.log.Warn("sqs: could not delete a handled message; SQS may redeliver it", "queue", s.q.name, "id", batch[i].msg.ID,
						"code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
					s.forget(batch[i])
					continue
				}
				retry = append(retry, batch[i])
			}
		}
		batch = retry
		if len(batch) > 0 {
			t := time.NewTimer(backoff(attempt))
			select {
			case <-t.C:
			case <-s.calls.Done():
				t.Stop()
			}
		}
	}
}
