package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Backlog returns group's backlog on topic. Messages ready for delivery
// in the group's queue come from a passive queue.declare, exact and
// current. AMQP 0-9-1 does not report messages delivered and not yet
// acknowledged, nor does it see those waiting in the group's delay queues
// for a nack delay: with Options.Management (URL parameter management)
// Backlog asks the management plugin's HTTP API for both, adds them to
// Messages, and reports the unacknowledged ones as InFlight and the
// delayed ones as Delayed; those are the plugin's samples (taken every 5s
// by default), so Approximate is set. Without it, InFlight is -1 and Note
// says how to enable the count. It returns an error wrapping
// mq.ErrNotFound if the queue does not exist, and creates nothing.
func (b *Broker) Backlog(ctx context.Context, topic, group string) (mq.Backlog, error) {
	if err := driver.ValidateName("topic", topic); err != nil {
		return mq.Backlog{}, fmt.Errorf("rabbitmq: %w", err)
	}
	if err := driver.ValidateName("group", group); err != nil {
		return mq.Backlog{}, fmt.Errorf("rabbitmq: %w", err)
	}
	exit, err := b.life.Enter()
	if err != nil {
		return mq.Backlog{}, errClosed
	}
	defer exit()
	name := queueName(topic, group)
	var q amqp.Queue
	err = b.topo.do(ctx, func(ch *amqp.Channel) error {
		var err error
		q, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
		return err
	})
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return mq.Backlog{}, fmt.Errorf("rabbitmq: %w: queue %q of group %q on topic %q does not exist", mq.ErrNotFound, name, group, topic)
		}
		return mq.Backlog{}, declareError("queue", name, err)
	}
	bl := mq.Backlog{Topic: topic, Group: group, Messages: int64(q.Messages), InFlight: -1}
	m := b.s.mgmt
	if m == nil {
		bl.Note = "unacknowledged and nack-delayed messages are not counted: AMQP does not report them; " +
			"add management=http://HOST:15672 (the RabbitMQ management plugin's API) to the URL to count them"
		return bl, nil
	}
	unacked, delayed, err := m.counts(ctx, name)
	if err != nil {
		return mq.Backlog{}, err
	}
	bl.Approximate = true
	bl.Delayed = delayed
	bl.Messages += delayed
	if unacked >= 0 {
		bl.InFlight = unacked
		bl.Messages += unacked
	} else {
		bl.Note = "the management plugin has not sampled the queue yet: unacknowledged messages are not counted; ask again in a few seconds"
	}
	return bl, nil
}

// DeleteGroup deletes group's queue on topic with the messages in it. It
// returns nil if the queue does not exist. Delay queues the group used
// for nack delays are left to expire (see Options.QueueExpires).
// Consumers still attached to the queue are cancelled by the broker.
func (b *Broker) DeleteGroup(ctx context.Context, topic, group string) error {
	if err := driver.ValidateName("group", group); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	exit, err := b.life.Enter()
	if err != nil {
		return errClosed
	}
	defer exit()
	name := queueName(topic, group)
	err = b.topo.do(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(name, false, false, false)
		return err
	})
	b.topo.forget(queueKey(name))
	var ae *amqp.Error
	if err != nil && !(errors.As(err, &ae) && ae.Code == amqp.NotFound) {
		return fmt.Errorf("rabbitmq: delete queue %q: %w", name, err)
	}
	return nil
}
