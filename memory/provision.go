package memory

import (
	"context"
	"fmt"

	"github.com/seedmq/mq/driver"
)

// Provision creates topic and groups that do not exist. A new group
// starts empty: it receives messages published from now on. It returns
// mq.ErrClosed once Close has begun.
func (b *Broker) Provision(ctx context.Context, topicName string, groups ...string) error {
	if err := driver.ValidateName("topic", topicName); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	for _, g := range groups {
		if err := driver.ValidateName("group", g); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if err := b.life.Err(); err != nil {
		return fmt.Errorf("memory: Provision: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s := b.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil {
		t = s.newTopic(topicName)
	}
	for _, name := range groups {
		if t.groups[name] == nil {
			t.groups[name] = newGroup(topicName, name)
		}
	}
	return nil
}

// newTopic creates the topic name, which must not exist. Callers hold
// s.mu.
func (s *server) newTopic(name string) *topic {
	t := &topic{name: name, groups: map[string]*group{}}
	s.topics[name] = t
	return t
}
