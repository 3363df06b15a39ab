package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/seedmq/mq/driver"
)

// errRevoked is the Begin result of a delivery whose partition was
// revoked before its handler could run: the message is left for the
// partition's new owner. It wraps driver.ErrNotHandled, so Classify
// releases it.
var errRevoked = fmt.Errorf("kafka: partition revoked: %w", driver.ErrNotHandled)

// beginHandler is the Begin of the partition's deliveries: the handler
// runs, and is counted as running, unless the partition was revoked while
// the delivery waited.
func (p *partition) beginHandler(del *driver.Delivery) error {
	if !p.t.begin(del.Ref) {
		return errRevoked
	}
	return nil
}

// handlerRan reports whether a delivery settled with err had its handler
// run (and counted by beginHandler). Only the dispatcher's release at
// shutdown (driver.ErrNotHandled) and a refusing Begin (errRevoked)
// settle without a run, and both pass those values as they are; the
// dispatcher turns a handler's own driver.ErrNotHandled into a plain
// failure, so a handler's result is never one of them.
func handlerRan(err error) bool {
	return err != errRevoked && err != driver.ErrNotHandled
}

// Settle records a handler's outcome (the delivery is its own
// driver.Settler), as SubscribeConfig.Classify names it: an ack moves the
// commit point; a release (not handled here) leaves the message to be
// redelivered from the commit point; a failure asks the dispatcher to
// retry in place after the backoff; a permanent failure is logged with
// driver.LogDropped (Kafka has no dead-letter target) and acknowledged.
func (d *delivery) Settle(_ context.Context, err error) (time.Duration, bool) {
	p := d.p
	s := p.g.s
	ran := handlerRan(err)
	outcome, delay := s.cfg.Classify(d.Msg.Attempt, err)
	switch outcome {
	case driver.Ack:
		p.t.ackEnd(d.seq, ran, d.dequeue())
	case driver.Release:
		// The group redelivers it from the commit point.
		if ran {
			p.t.end()
		}
		d.unqueue()
	case driver.Reject:
		driver.LogDropped(s.b.log.With("partition", p.id, "offset", d.offset), Scheme, d.Msg, err)
		p.t.ackEnd(d.seq, ran, d.dequeue())
	default: // driver.Retry
		p.t.fail(d.offset, d.Msg.Attempt)
		if ran {
			p.t.end() // after fail, so that a final commit carries the count
		}
		// A message waiting to be retried does not hold up a revoked
		// partition's drain; if it runs meanwhile, revoke waits for it as
		// a running handler.
		d.unqueue()
		if p.t.isRevoked() {
			break // the partition's new owner redelivers it
		}
		return delay, true
	}
	return 0, false
}

// unqueue tells the tracker, once, that the delivery no longer waits to be
// handled.
func (d *delivery) unqueue() {
	if d.dequeue() {
		d.p.t.settled()
	}
}

// dequeue reports whether the tracker still counts the delivery as
// waiting to be handled, and stops it counting: the caller tells the
// tracker (settled).
func (d *delivery) dequeue() bool {
	q := d.queued
	d.queued = false
	return q
}
