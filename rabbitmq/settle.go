package rabbitmq

import (
	"context"
	"errors"
	"math/bits"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// maxTTL is the longest x-message-ttl RabbitMQ accepts, in milliseconds.
const maxTTL = 1<<32 - 1

// settleTimeout bounds the redelivery publish of one failed message.
const settleTimeout = 30 * time.Second

// settler returns the Settler of delivery d received on ch, whose
// acks a sends; m is the message decoded from it. A nack or reject counts
// as settled for a only once it is written, so that no multiple ack can
// cover the message before.
func (s *subscription) settler(ch *amqp.Channel, chCtx context.Context, a *acker, raw any, m *mq.Message) driver.SettleFunc {
	attempt := m.Attempt // before the handler can change it
	return func(ctx context.Context, herr error) (time.Duration, bool) {
		d := raw.(amqp.Delivery)
		var err error
		outcome, delay := s.cfg.Classify(attempt, herr)
		switch outcome {
		case driver.Ack:
			a.ack(d.DeliveryTag) // logs its own failures
		case driver.Release:
			err = nackSettled(ch, a, d.DeliveryTag)
		case driver.Reject:
			if dlx := s.b.s.DeadLetterExchange; dlx == "" {
				driver.LogDropped(s.b.s.Logger, "rabbitmq", m, herr)
			} else {
				driver.LogDeadLettered(s.b.s.Logger, "rabbitmq", m, dlx, herr)
			}
			if err = ch.Reject(d.DeliveryTag, false); err == nil {
				a.settled(d.DeliveryTag)
			}
		case driver.Retry:
			err = s.redeliver(ctx, ch, chCtx, a, &d, attempt, delay)
		}
		if err != nil && !ch.IsClosed() {
			s.b.s.Logger.Warn("rabbitmq: cannot settle message; the broker will redeliver it", "queue", s.queue, "id", d.MessageId, "error", err)
		}
		return 0, false
	}
}

// redeliver schedules the next attempt of a message whose attempt failed:
// it publishes a copy carrying the attempt count to the delay queue for
// delay (or straight back to the group's queue), and acks the original
// once the copy is confirmed. If that fails, it requeues the original at
// once, so nothing is lost.
func (s *subscription) redeliver(ctx context.Context, ch *amqp.Channel, chCtx context.Context, a *acker, d *amqp.Delivery, attempt int, delay time.Duration) error {
	// Give up when the channel closes: the broker has requeued the
	// original then.
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	defer context.AfterFunc(chCtx, cancel)()
	if chCtx.Err() != nil {
		return nil
	}
	target := s.queue
	if delay > 0 && !s.b.s.NoProvision {
		q, err := s.b.topo.delayQueue(ctx, s.queue, delayBucket(delay))
		if err != nil {
			s.b.s.Logger.Warn("rabbitmq: cannot declare delay queue; requeueing at once", "queue", s.queue, "error", err)
			return nackSettled(ch, a, d.DeliveryTag)
		}
		target = q
	}
	out := []outMsg{{exchange: "", key: target, pub: redeliveryCopy(d, s.queue, attempt)}}
	err := s.b.pubs.send(ctx, out, true)
	if err == nil {
		err = out[0].err
	}
	if err != nil {
		if chCtx.Err() != nil {
			return nil
		}
		if errors.Is(err, mq.ErrNotFound) && target != s.queue {
			s.b.topo.forget(queueKey(target)) // deleted behind our back: declare it again next time
		}
		s.b.s.Logger.Warn("rabbitmq: cannot schedule redelivery; requeueing at once", "queue", s.queue, "error", err)
		return nackSettled(ch, a, d.DeliveryTag)
	}
	a.ack(d.DeliveryTag)
	return nil
}

// nackSettled requeues the message tag on ch and, once that is written,
// tells a that it is settled.
func nackSettled(ch *amqp.Channel, a *acker, tag uint64) error {
	err := ch.Nack(tag, false, true)
	if err == nil {
		a.settled(tag)
	}
	return err
}

// delayBucket rounds d up to one of a few delays per doubling (4, 5, 6 or
// 7 times a power of two milliseconds), so a subscription needs few delay
// queues, and a message never comes back early and at most 25% late.
func delayBucket(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms >= maxTTL {
		return maxTTL
	}
	if ms < 4 {
		return max(ms, 1)
	}
	e := bits.Len64(uint64(ms)) - 3
	for m := int64(4); ; m++ {
		if v := m << e; v >= ms {
			return min(v, maxTTL)
		}
	}
}
