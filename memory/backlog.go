package memory

import (
	"context"
	"fmt"

	"github.com/seedmq/mq"
)

// Backlog returns group's depth on topic (see Depth) as an mq.Backlog:
// Messages counts every message the group has not acknowledged, those
// being handled included; Delayed those waiting for a Message.Delay or a
// nack delay. InFlight is -1: the memory broker does not count it apart.
// It returns an error wrapping mq.ErrNotFound if the topic or group does
// not exist, and mq.ErrClosed after Close.
func (b *Broker) Backlog(ctx context.Context, topicName, groupName string) (mq.Backlog, error) {
	if err := b.life.Err(); err != nil {
		return mq.Backlog{}, fmt.Errorf("memory: Backlog: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return mq.Backlog{}, err
	}
	s := b.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil || t.groups[groupName] == nil {
		return mq.Backlog{}, fmt.Errorf("memory: %w: no group %q on topic %q", mq.ErrNotFound, groupName, topicName)
	}
	g := t.groups[groupName]
	return mq.Backlog{
		Topic:    topicName,
		Group:    groupName,
		Messages: int64(g.count),
		InFlight: -1,
		Delayed:  int64(g.delayed.Len()),
	}, nil
}

// DeleteGroup removes group from topic with the messages it has not
// acknowledged. It returns nil if the group does not exist. A
// subscription still reading the group gets no message published later.
func (b *Broker) DeleteGroup(ctx context.Context, topicName, groupName string) error {
	if err := b.life.Err(); err != nil {
		return fmt.Errorf("memory: DeleteGroup: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s := b.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil || t.groups[groupName] == nil {
		return nil
	}
	delete(t.groups, groupName)
	return nil
}
