package kafka

import (
	"context"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// partition is one partition assigned in one generation.
type partition struct {
	g     *generation
	id    int
	start int64
	t     *tracker
	begin func(*driver.Delivery) error // the Begin of every delivery of the partition
}

// newPartition returns partition id of g, to be fetched from offset start;
// prior holds what was committed with the group's offset: the failed
// attempt counts and the started mark.
func newPartition(g *generation, id int, start int64, prior committedAttempts) *partition {
	p := &partition{g: g, id: id, start: start, t: newTracker(start, prior.fails)}
	p.t.inheritStarted(prior.startedBelow)
	p.begin = p.beginHandler
	return p
}

// run fetches the partition's messages and submits them to the
// dispatcher until the generation ends or the subscription stops; then it
// waits for the generation to end and lets the messages already fetched
// be handled (see tracker.revoke), so that the final commit includes
// them.
func (p *partition) run(genCtx context.Context) {
	defer p.g.wg.Done()
	s := p.g.s
	ctx, cancel := context.WithCancel(s.fetch)
	defer cancel()
	defer context.AfterFunc(genCtx, cancel)()

	p.fetch(ctx)
	<-genCtx.Done()
	// Leave a quarter of the rebalance timeout to commit and rejoin.
	if !p.t.revoke(s.b.cfg.RebalanceTimeout * 3 / 4) {
		s.log.Warn("kafka: fetched messages of a revoked partition not handled within three quarters of the rebalance timeout; they, and messages handled after them, may be handled again by the partition's new owner", "partition", p.id)
	}
}

// delivery is one fetched message on its way through the dispatcher. It
// holds the message handed to the handler, so that both take one
// allocation. Its Begin is its partition's, shared by all its deliveries:
// a per-delivery func value would cost an allocation per message.
type delivery struct {
	driver.Delivery
	msg    mq.Message
	km     kafka.Message // the native delivery, boxed only when As asks
	p      *partition
	seq    int64
	offset int64
	queued bool // counted in the tracker's queued deliveries
}

// newDelivery makes the delivery of the fetched record km, whose strings
// it takes from a (nil: memory of their own).
func (p *partition) newDelivery(km kafka.Message, a *arena) *delivery {
	s := p.g.s
	seq, failed := p.t.add(km.Offset)
	d := &delivery{p: p, seq: seq, offset: km.Offset, queued: true, km: km}
	m := &d.msg
	fromKafka(m, km, a)
	driver.SetLazyNative(m, d)
	m.Topic = s.topic
	m.Group = s.cfg.Group
	m.Attempt = 1 + failed

	d.Msg = m
	d.Lane = m.Key
	d.Settler = d
	d.Begin = p.begin
	d.Ref = km.Offset
	return d
}

// LazyNative returns the fetched record as kafka.Message, for
// Message.As.
func (d *delivery) LazyNative() any { return d.km }
