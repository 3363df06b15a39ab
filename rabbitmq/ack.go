package rabbitmq

import (
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// acker sends the acks of one consuming channel, combining them into
// basic.ack frames with multiple=true. A multiple ack goes up to a tag
// below the lowest unsettled delivery only, so it never covers a message
// whose handler has not succeeded (it is still unsettled) or that was
// nacked or rejected (that was written before the tag counted as
// settled). While other deliveries are in flight, an ack is held back so
// that the next multiple ack covers it too, but never more than holdMax
// acks and never longer than holdFor; then everything below the lowest
// unsettled delivery goes out as one frame, and acks above it (handlers
// finishing out of order) one by one, so a slow handler delays no other
// message's ack by more than holdFor. With nothing else in flight an ack
// is written at once. A handler that acks while another is writing
// leaves its tag to that writer, which loops until nothing is ready;
// drain writes what is held, so that nothing is lost when the channel
// closes.
type acker struct {
	ch      ackChannel
	log     *slog.Logger
	queue   string
	holdMax int           // most acks held back
	holdFor time.Duration // longest an ack is held back

	mu       sync.Mutex
	open     map[uint64]struct{} // delivered tags not settled yet
	seen     uint64              // highest delivered tag
	low      uint64              // every tag below low is settled
	ready    []uint64            // settled by an ack not written yet
	held     []uint64            // acks above low held back
	spare    []uint64            // a drained ready, for reuse
	flushing bool                // some caller is writing acks
	force    bool                // write the held acks now
	timer    *time.Timer         // writes the held acks after holdFor
	armed    bool                // timer is running
	idle     sync.Cond           // signaled when flushing ends
}

// holdFor is how long an acker holds back an ack that a multiple ack may
// soon cover.
const holdFor = time.Millisecond

// ackChannel is the part of *amqp.Channel an acker uses.
type ackChannel interface {
	Ack(tag uint64, multiple bool) error
	IsClosed() bool
}

var _ ackChannel = (*amqp.Channel)(nil)

// newAcker returns the acker of ch, whose consumer has the given
// prefetch: it holds back at most a quarter of it.
func newAcker(ch ackChannel, log *slog.Logger, queue string, prefetch int) *acker {
	a := &acker{ch: ch, log: log, queue: queue, holdMax: prefetch / 4, holdFor: holdFor, open: map[uint64]struct{}{}, low: 1}
	a.idle.L = &a.mu
	return a
}

// delivered records a delivery before its handler runs. The channel
// numbers deliveries one by one, but receivers running side by side may
// record them out of order: a tag above the highest seen marks the ones
// between as unsettled too, so that no multiple ack covers a delivery
// whose receiver has not recorded it yet (should a tag ever be skipped, it
// stays unsettled for the same reason).
func (a *acker) delivered(tag uint64) {
	a.mu.Lock()
	for t := a.seen + 1; t < tag; t++ {
		a.open[t] = struct{}{}
	}
	a.open[tag] = struct{}{}
	a.seen = max(a.seen, tag)
	a.mu.Unlock()
}

// settled records that tag was settled by a nack or reject that has been
// written.
func (a *acker) settled(tag uint64) {
	a.mu.Lock()
	delete(a.open, tag)
	a.mu.Unlock()
}

// ack acknowledges tag: it writes its ack and any others that are ready,
// unless another caller is writing them.
func (a *acker) ack(tag uint64) {
	a.mu.Lock()
	delete(a.open, tag)
	a.ready = append(a.ready, tag)
	a.flush()
}

// expire writes the held acks once they have waited holdFor.
func (a *acker) expire() {
	a.mu.Lock()
	a.armed = false
	a.force = true
	a.flush()
}

// drain writes every ack settled so far, held ones included, and returns
// once they are written.
func (a *acker) drain() {
	a.mu.Lock()
	for a.flushing {
		a.idle.Wait()
	}
	a.force = true
	a.flush()
	a.mu.Lock()
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Unlock()
}

// flush writes the ready acks unless another caller is writing; it is
// called with a.mu held and releases it.
func (a *acker) flush() {
	if a.flushing {
		a.mu.Unlock()
		return
	}
	a.flushing = true
	for len(a.ready) > 0 || (a.force && len(a.held) > 0) {
		for a.low <= a.seen {
			if _, ok := a.open[a.low]; ok {
				break
			}
			a.low++
		}
		// Everything settled and not written yet: what was held back
		// and what is newly ready.
		batch := a.ready
		a.ready = a.spare[:0]
		held := append(a.held, batch...)
		var top uint64
		below := 0
		var singles []uint64
		if a.force || len(a.open) == 0 || len(held) > a.holdMax {
			// Write: one multiple ack below the floor; above it, single
			// acks once too many are held (or when forced).
			floor := a.low
			kept := held[:0]
			for _, t := range held {
				if t < floor {
					below++
					top = max(top, t)
				} else {
					kept = append(kept, t)
				}
			}
			held = kept
			if len(held) > 0 && (a.force || len(held) > a.holdMax) {
				singles = append(singles, held...)
				held = held[:0]
			}
		}
		// Otherwise hold them all: other deliveries are in flight, so
		// another ack will come soon and cover these with it.
		a.held = held
		a.force = false
		if len(a.held) > 0 && !a.armed {
			a.armed = true
			if a.timer == nil {
				a.timer = time.AfterFunc(a.holdFor, a.expire)
			} else {
				a.timer.Reset(a.holdFor)
			}
		}
		a.mu.Unlock()
		if below > 0 {
			a.report(a.ch.Ack(top, below > 1), top)
		}
		for _, t := range singles {
			a.report(a.ch.Ack(t, false), t)
		}
		a.mu.Lock()
		a.spare = batch[:0]
	}
	a.force = false
	a.flushing = false
	a.idle.Broadcast()
	a.mu.Unlock()
}

// report logs a failed ack unless the channel has closed (the broker then
// redelivers the message anyway).
func (a *acker) report(err error, tag uint64) {
	if err != nil && !a.ch.IsClosed() {
		a.log.Warn("rabbitmq: cannot ack message; the broker will redeliver it", "queue", a.queue, "delivery_tag", tag, "error", err)
	}
}
