package sqs

import (
	"context"
	"errors"
	"fmt"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Subscribe receives the messages of topic that reach the queue of the
// subscription's group and passes them to h, exactly as Broker.Subscribe
// does for a queue (see it for receiving, settling, visibility, attempts,
// dead-lettering and stopping), blocking until ctx ends (it returns
// ctx.Err()), the broker is closed (mq.ErrClosed), or a failure retrying
// cannot fix.
//
// A group is required (mq.Group, or Options.Group): it is an SQS queue
// subscribed to the topic, created with the topic, the queue policy and
// the subscription unless provisioning is off, in which case any of them
// missing is mq.ErrNotFound. Distinct groups each receive every message
// (fan-out); subscriptions with the same group share its messages
// (competing consumers). mq.StartAt(mq.Earliest) is mq.ErrNotSupported.
func (s *SNSBroker) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
	cfg, exit, err := driver.StartSubscribe(&s.b.l, topic, h, s.opts.Group, mq.Latest, opts)
	if errors.Is(err, mq.ErrClosed) {
		return fmt.Errorf("sqs: Subscribe: %w", err)
	}
	if err != nil {
		return fmt.Errorf("sqs: %w", err)
	}
	defer exit()
	if err := cfg.RequireGroup(); err != nil {
		return fmt.Errorf("sqs: %w (each group is an SQS queue subscribed to the topic)", err)
	}
	if cfg.StartAt == mq.Earliest {
		return fmt.Errorf("sqs: %w: StartAt(Earliest): a new group's queue receives only what is published after it is subscribed", mq.ErrNotSupported)
	}
	if _, err := s.queueName(topic, cfg.Group); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.b.subscribe(ctx, topic, h, cfg, func(ctx context.Context) (*queue, string, string, error) {
		g, err := s.group(ctx, topic, cfg.Group, !s.opts.NoProvision)
		if err != nil {
			return nil, "", "", err
		}
		return g.q, cfg.Group, g.dlq, nil
	})
}
