package sqs

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// receive runs one long-poll loop until ctx ends or a non-retryable
// failure.
func (s *subscription) receive(ctx context.Context) {
	b := s.b
	backoff := mq.ExponentialBackoff(100*time.Millisecond, 5*time.Second)
	failures := 0
	pause := time.NewTimer(receivePause)
	defer pause.Stop()
	for {
		n, ok := s.credits.take(ctx)
		if !ok {
			return
		}
		sent := time.Now()
		out, err := b.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(s.q.url),
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             int32(b.opts.WaitTime / time.Second),
			VisibilityTimeout:           int32(s.claim() / time.Second),
			MessageAttributeNames:       allAttributes,
			MessageSystemAttributeNames: systemAttributes(s.q.fifo),
		})
		var got []types.Message
		visibleAt := sent.Add(s.claim())
		if out != nil {
			got = out.Messages
		}
		s.credits.give(n - len(got))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			err = wrapErr(ctx, "ReceiveMessage from "+s.q.name, err)
			s.cfg.SetConnected(false)
			if !mq.IsRetryable(err) {
				b.log.Error("sqs: receiving failed; the subscription stops", "queue", s.q.name, "error", err)
				select {
				case s.fatal <- err:
				default:
				}
				return
			}
			failures++
			b.log.Warn("sqs: receiving failed; retrying", "queue", s.q.name, "failures", failures, "error", err)
			if driver.Sleep(ctx, backoff(failures)) != nil {
				return
			}
			continue
		}
		failures = 0
		s.cfg.SetConnected(true)
		if len(got) == 0 {
			continue
		}
		rb := &recvBatch{open: len(got), acked: make([]*held, 0, len(got))}
		if len(got) < n {
			rb.done = make(chan struct{})
			rb.left.Store(int32(len(got)))
		}
		for i := range got {
			s.deliver(ctx, &got[i], visibleAt, rb)
		}
		if rb.done != nil {
			pause.Reset(receivePause)
			select {
			case <-rb.done:
			case <-pause.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

// receivePause bounds how long a receiver waits, after a ReceiveMessage
// that returned fewer messages than it asked for, for those messages to
// be done with (deleted or released) before it asks again. The queue had
// no more ready messages, so asking again at once would mostly fetch one
// or two per call, and each call costs about as much client CPU as the
// messages it brings; waiting for the deletes is the rhythm of a plain
// receive-handle-delete loop. The bound keeps slow handlers from holding
// back messages that other free handlers could take.
const receivePause = 25 * time.Millisecond

// recvBatch is the messages one ReceiveMessage returned.
type recvBatch struct {
	// On a partial receive only (done is nil otherwise): the messages not
	// yet done with (deleted or released), see receivePause.
	left atomic.Int32
	done chan struct{} // closed when left reaches 0

	// Guarded by subscription.delMu: the messages neither acknowledged
	// nor released yet, those acknowledged whose delete waits for them,
	// and the timer that bounds that wait (see ack).
	open  int
	acked []*held
	wait  *time.Timer
}

// allAttributes asks ReceiveMessage for every message attribute.
var allAttributes = []string{"All"}

// The system attributes decode reads: the attempt, the publish time and,
// on FIFO queues only (a standard queue has none), the message group.
var (
	standardSystemAttributes = []types.MessageSystemAttributeName{
		types.MessageSystemAttributeNameApproximateReceiveCount,
		types.MessageSystemAttributeNameSentTimestamp,
	}
	fifoSystemAttributes = append(standardSystemAttributes[:len(standardSystemAttributes):len(standardSystemAttributes)],
		types.MessageSystemAttributeNameMessageGroupId)
)

func systemAttributes(fifo bool) []types.MessageSystemAttributeName {
	if fifo {
		return fifoSystemAttributes
	}
	return standardSystemAttributes
}

// deliver takes charge of one received message and hands it to the
// dispatcher. On a FIFO queue its Key is its dispatcher lane, so that the
// messages of one Key are handled one at a time, in the order received
// (which is SQS's order within a message group), also across in-place
// retries. If the dispatcher refuses it (the subscription is stopping),
// the message is made visible again.
func (s *subscription) deliver(ctx context.Context, sm *types.Message, visibleAt time.Time, rb *recvBatch) {
	h := &held{sm: *sm, visibleAt: visibleAt, batch: rb}
	m := &h.m
	h.msg = m
	m.Topic, m.Group = s.q.topic, s.group
	if err := decode(sm, m); err != nil {
		s.b.log.Warn("sqs: message has a malformed mq-h attribute; delivering it without the packed headers", "queue", s.q.name, "sqs_message_id", aws.ToString(sm.MessageId), "error", err)
	}
	driver.SetNative(m, *sm)
	if s.q.fifo {
		h.lane = m.Key
	}
	h.del = driver.Delivery{
		Msg:  m,
		Lane: h.lane,
		Settler: driver.SettleFunc(func(_ context.Context, err error) (time.Duration, bool) {
			return s.settle(h, err)
		}),
	}
	s.mu.Lock()
	s.held[m] = h
	s.mu.Unlock()
	if err := s.d.Submit(ctx, &h.del); err != nil {
		s.release(h, 0)
		s.credits.give(1)
	}
}
