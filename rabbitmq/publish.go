package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Publish sends msgs to topic's exchange as persistent messages and
// returns nil once the broker has confirmed every one. Concurrent calls
// share a few confirm-mode channels and are pipelined: nothing waits for
// a round trip per message. While the connection is down Publish waits
// for it (bounded by ctx) and resends messages that were not confirmed,
// so a message may be stored twice but is never reported as sent without
// a confirm. A message that no queue receives (the topic has no group)
// fails with an error wrapping mq.ErrNotFound unless AllowUnroutable is
// set. Failures of some messages are reported as *mq.PublishError. After
// Close, Publish returns mq.ErrClosed.
func (b *Broker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := driver.CheckPublish(&b.life, topic, msgs, driver.LimitsOf(b.Capabilities())); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	if err := checkMessages(msgs); err != nil {
		return err
	}
	exit, err := b.life.Enter()
	if err != nil {
		return errClosed
	}
	defer exit()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.topo.exchange(ctx, topic); err != nil {
		return err
	}
	out := make([]outMsg, len(msgs))
	for i, m := range msgs {
		out[i] = outMsg{exchange: topic, key: m.Key, pub: encode(m)}
	}
	if err := b.pubs.send(ctx, out, !b.s.AllowUnroutable); err != nil {
		if errors.Is(err, mq.ErrClosed) {
			return errClosed
		}
		return err
	}
	var pe *mq.PublishError
	for i := range out {
		e := out[i].err
		if e == nil {
			continue
		}
		if pe == nil {
			pe = &mq.PublishError{Total: len(msgs)}
		}
		pe.Failures = append(pe.Failures, mq.PublishFailure{Index: i, ID: msgs[i].ID, Err: e})
		if errors.Is(e, mq.ErrNotFound) && !b.s.NoProvision {
			b.topo.forgetExchange(topic)
		}
	}
	if pe != nil {
		if len(msgs) == 1 {
			return pe.Failures[0].Err
		}
		return pe
	}
	return nil
}

// outcome is a publish's failure kind, deciding whether Publish resends.
type outcome int

const (
	sent     outcome = iota // confirmed by the broker
	resend                  // channel lost or broker nack: send again
	finalErr                // will not succeed by resending
)

// outMsg is one message ready for the wire, and its state while send
// sends it.
type outMsg struct {
	exchange string
	key      string
	pub      amqp.Publishing
	dc       *amqp.DeferredConfirmation // its confirmation, while awaited
	err      error                      // the last attempt's failure; nil once confirmed
}

// send publishes msgs and waits for their confirms, resending messages
// whose channel was lost, until each is confirmed or failed for good or
// ctx ends. Each message's err is then its outcome (nil = confirmed);
// send fails only when it stops early. mandatory makes an unroutable
// message fail with ErrNotFound.
func (p *publisher) send(ctx context.Context, msgs []outMsg, mandatory bool) error {
	var todo, again indexes // messages still to send; nil: all of them
	backoff := 10 * time.Millisecond
	for {
		pc, err := p.channel(ctx)
		if err != nil {
			return err
		}
		// A connection blocked by a broker resource alarm stops reading:
		// wait here, bounded by ctx, rather than in a socket write.
		if err := p.b.pub.unblocked(ctx); err != nil {
			return err
		}
		n := len(msgs)
		if todo != nil {
			n = len(todo)
		}
		if err := pc.publish(ctx, msgs, n, todo, mandatory); err != nil {
			return err
		}
		again = again[:0]
		for j := range n {
			i := todo.at(j)
			m := &msgs[i]
			if m.dc == nil {
				if m.err != nil {
					again = append(again, i) // not written: send again
				}
				continue
			}
			select {
			case <-m.dc.Done():
			case <-ctx.Done():
				p.abandon(pc, msgs, n, j, todo)
				return ctx.Err()
			}
			k, err := pc.result(m.dc, m, mandatory)
			m.dc, m.err = nil, err
			if k == resend {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return nil
		}
		todo, again = again, todo
		if err := driver.Sleep(ctx, backoff); err != nil {
			return fmt.Errorf("rabbitmq: %w (last failure: %v)", err, msgs[todo[0]].err)
		}
		backoff = min(backoff*2, time.Second)
	}
}

// abandon settles, in the background, the confirmations a caller whose
// ctx ended no longer waits for (todo's messages from to n-1), so
// their confirm-window slots are freed and their returns claimed. Every
// deferred confirmation settles: by the broker's ack or nack, or when the
// channel closes, at the latest when Close closes the connection.
func (p *publisher) abandon(pc *pubChan, msgs []outMsg, n, from int, todo indexes) {
	var left []*outMsg
	for j := from; j < n; j++ {
		if m := &msgs[todo.at(j)]; m.dc != nil {
			left = append(left, m)
		}
	}
	wait := func() {
		for _, m := range left {
			<-m.dc.Done()
			_, _ = pc.result(m.dc, m, true)
		}
	}
	if !p.b.spawn(wait) {
		wait() // Close has closed the connections: all are settled
	}
}

// indexes lists messages by their index in a Publish call's messages; nil
// stands for all of them, in order.
type indexes []int

// at returns the index of the j-th message listed.
func (x indexes) at(j int) int {
	if x == nil {
		return j
	}
	return x[j]
}
