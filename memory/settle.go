package memory

import (
	"context"
	"maps"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// delivery is a leased message handed to the dispatcher: one allocation
// holds the driver.Delivery, the handler's Message and the lease.
type delivery struct {
	driver.Delivery
	msg      mq.Message
	s        *subscription
	p        *pending
	lease    uint64
	deadline *time.Timer // ack deadline, nil without one
}

// delivery wraps a leased message for the dispatcher.
func (s *subscription) delivery(t taken) *driver.Delivery {
	p, lease := t.p, t.lease
	// The handler gets its own Message and Header, but shares the stored
	// Body (capacity clipped, so an append copies): copying it again for
	// every delivery would cost more than the rest of the trip for large
	// bodies.
	// Handlers must not modify a received Body in place (see mq.Message).
	e := p.e
	d := &delivery{s: s, p: p, lease: lease}
	d.msg = mq.Message{
		ID: e.id, Key: e.key, Body: e.body[:len(e.body):len(e.body)],
		Topic: s.g.topic, Group: s.g.name, Attempt: t.attempt, PublishTime: e.published,
	}
	if e.header != nil {
		d.msg.Header = maps.Clone(e.header)
	} else {
		d.msg.Header = map[string]string{} // never nil on delivery
	}
	if dl := s.b.opts.AckDeadline; dl > 0 {
		d.deadline = time.AfterFunc(dl, func() { s.expire(p, lease) })
	}
	d.Msg = &d.msg
	d.Settler = d
	return &d.Delivery
}

// Settle makes the delivery its own driver.Settler: it records the
// outcome with the group and frees the subscription's room for another
// message.
func (d *delivery) Settle(_ context.Context, err error) (time.Duration, bool) {
	if d.deadline != nil {
		d.deadline.Stop()
	}
	d.s.settle(d.p, d.lease, &d.msg, err)
	<-d.s.room
	return 0, false
}

// settle records a handler's outcome with the group.
func (s *subscription) settle(p *pending, lease uint64, m *mq.Message, err error) {
	srv := s.b.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if s.held[p] == lease {
		delete(s.held, p)
	}
	var ok bool
	switch outcome, delay := s.cfg.Classify(m.Attempt, err); outcome {
	case driver.Ack:
		ok = s.g.ack(p, lease)
	case driver.Release:
		ok = s.g.retry(p, lease, 0, false)
	case driver.Reject:
		// No dead-letter target of its own: the message is dropped.
		if ok = s.g.ack(p, lease); ok {
			driver.LogDropped(s.b.log, "memory", m, err)
		}
	default: // driver.Retry
		ok = s.g.retry(p, lease, delay, true)
	}
	if !ok {
		// The lease was revoked (ack deadline or Disconnect) and the
		// message handed out again: this outcome is lost, as a late ack
		// is on a real broker.
		s.b.log.Warn("memory: outcome discarded: the message's lease was revoked (ack deadline or Disconnect) and it was redelivered",
			"topic", m.Topic, "group", m.Group, "id", m.ID, "attempt", m.Attempt)
	}
}

// expire returns a message whose ack deadline passed to its group.
func (s *subscription) expire(p *pending, lease uint64) {
	srv := s.b.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if s.held[p] == lease {
		delete(s.held, p)
	}
	s.g.retry(p, lease, 0, true)
}
