package memory

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Publish stores msgs in topic and hands a copy to every group of the
// topic. It returns once all are stored; it never blocks on consumers.
// It returns mq.ErrClosed once Close has begun.
func (b *Broker) Publish(ctx context.Context, topicName string, msgs ...*mq.Message) error {
	if err := driver.CheckPublish(&b.life, topicName, msgs, b.limits); err != nil {
		return fmt.Errorf("memory: Publish: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.plain.Load() {
		if err := b.injectedFault(); err != nil {
			return fmt.Errorf("memory: injected publish failure: %w", err)
		}
	}

	// Copy outside the server lock: the caller may reuse its buffers
	// once Publish returns, as with any broker. One allocation holds the
	// entries, their Messages and their first group's pending records.
	entries := make([]entry, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		e := &entries[i]
		e.id, e.key, e.published, e.delay = m.ID, m.Key, now, m.Delay
		switch {
		case len(m.Body) > 0:
			// append allocates without zeroing what it then copies
			// over, where make+copy would zero the body first.
			e.body = append([]byte(nil), m.Body...)
		case m.Body != nil:
			e.body = []byte{}
		}
		if m.Header != nil {
			e.header = maps.Clone(m.Header)
		}
	}

	s := b.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil {
		if b.opts.NoProvision {
			return fmt.Errorf("memory: %w: topic %q does not exist and provisioning is off; call Provision first", mq.ErrNotFound, topicName)
		}
		t = s.newTopic(topicName)
	}
	var more []pending // records for the groups after the first
	if len(t.groups) > 1 {
		more = make([]pending, len(entries)*(len(t.groups)-1))
	}
	for i := range entries {
		e := &entries[i]
		t.seq++
		e.seq = t.seq
		t.log.append(e, b.opts.Retain)
		first := true
		for _, g := range t.groups {
			if first {
				g.add(e, &e.first)
				first = false
				continue
			}
			g.add(e, &more[0])
			more = more[1:]
		}
	}
	return nil
}
