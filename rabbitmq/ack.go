package rabbitmq

import (
	"log/slog"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// acker sends the acks of one consuming channel, combining them: a
// handler that acks while another is writing acks leaves its delivery tag
// to that writer and returns, and the writer sends everything that is
// ready, as one basic.ack with multiple=true for the tags below the
// lowest unsettled delivery and one basic.ack each for the tags above it.
// A multiple ack therefore never covers a message whose handler has not
// succeeded (it is still unsettled) or that was nacked or rejected (that
// was written before the tag counted as settled). Nothing waits for more
// acks to arrive: the writer loops until no ack is ready, so when the last
// Settle call returns, every ack is written.
type acker struct {
	ch    ackChannel
	log   *slog.Logger
	queue string

	mu       sync.Mutex
	open     map[uint64]struct{} // delivered tags not settled yet
	seen     uint64              // highest delivered tag
	low      uint64              // every tag below low is settled
	ready    []uint64            // settled by an ack not written yet
	spare    []uint64            // a drained ready, for reuse
	flushing bool                // some caller is writing acks
}

// ackChannel is the part of *amqp.Channel an acker uses.
type ackChannel interface {
	Ack(tag uint64, multiple bool) error
	IsClosed() bool
}

var _ ackChannel = (*amqp.Channel)(nil)

func newAcker(ch ackChannel, log *slog.Logger, queue string) *acker {
	return &acker{ch: ch, log: log, queue: queue, open: map[uint64]struct{}{}, low: 1}
}

// delivered records a delivery before its handler runs. Tags arrive in
// increasing order, one by one; should one ever be skipped, it stays
// unsettled, so that no multiple ack covers it.
func (a *acker) delivered(tag uint64) {
	a.mu.Lock()
	for t := a.seen + 1; t < tag; t++ {
		a.open[t] = struct{}{}
	}
	a.open[tag] = struct{}{}
	a.seen = tag
	a.mu.Unlock()
}

// settled records that tag was settled by a nack or reject that has been
// written.
func (a *acker) settled(tag uint64) {
	a.mu.Lock()
	delete(a.open, tag)
	a.mu.Unlock()
}

// ack acknowledges tag, writing its ack and any others that are ready
// unless another caller is writing them.
func (a *acker) ack(tag uint64) {
	a.mu.Lock()
	delete(a.open, tag)
	a.ready = append(a.ready, tag)
	if a.flushing {
		a.mu.Unlock()
		return
	}
	a.flushing = true
	for len(a.ready) > 0 {
		for a.low <= a.seen {
			if _, ok := a.open[a.low]; ok {
				break
			}
			a.low++
		}
		batch, floor := a.ready, a.low
		a.ready = a.spare[:0]
		a.mu.Unlock()
		a.write(batch, floor)
		a.mu.Lock()
		a.spare = batch[:0]
	}
	a.flushing = false
	a.mu.Unlock()
}

// write sends the acks of batch; every tag below floor is settled.
func (a *acker) write(batch []uint64, floor uint64) {
	var top uint64
	below := 0
	for _, t := range batch {
		if t < floor {
			below++
			top = max(top, t)
		}
	}
	if below > 0 {
		a.report(a.ch.Ack(top, below > 1), top)
	}
	if below == len(batch) {
		return
	}
	for _, t := range batch {
		if t >= floor {
			a.report(a.ch.Ack(t, false), t)
		}
	}
}

// report logs a failed ack unless the channel has closed (the broker then
// redelivers the message anyway).
func (a *acker) report(err error, tag uint64) {
	if err != nil && !a.ch.IsClosed() {
		a.log.Warn("rabbitmq: cannot ack message; the broker will redeliver it", "queue", a.queue, "delivery_tag", tag, "error", err)
	}
}
