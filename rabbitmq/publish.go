package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
)

// Publishing works like this: a small pool of confirm-mode channels on the
// publish connection is shared by every Publish call. A call takes one
// channel, writes all its messages (mandatory, persistent) without waiting,
// and then waits for their confirms. Each channel has a confirm window (a
// semaphore) that bounds unconfirmed messages. One goroutine per channel
// reads basic.return and basic.ack/nack, handling a message's return
// before its ack, as the broker sends them.

// errUnroutable is the failure of a message the exchange routed nowhere.
var errUnroutable = errors.New("no queue is bound to the topic's exchange (provision a group first, or set allow_unroutable)")

// outcome is a publish's failure kind, deciding whether Publish resends.
type outcome int

const (
	sent     outcome = iota // confirmed by the broker
	resend                  // channel lost or broker nack: send again
	finalErr                // will not succeed by resending
)

// pubBatch tracks the messages of one Publish attempt on one channel.
type pubBatch struct {
	results []result
	left    atomic.Int32
	done    chan struct{}
	window  chan struct{} // the channel's confirm window
}

// result is the outcome of one message of a batch.
type result struct {
	kind outcome
	err  error
}

// settle records message i's outcome and frees its confirm-window slot.
func (b *pubBatch) settle(i int, k outcome, err error) {
	<-b.window
	b.record(i, k, err)
}

// record records message i's outcome for a message that holds no
// confirm-window slot.
func (b *pubBatch) record(i int, k outcome, err error) {
	b.results[i] = result{k, err}
	if b.left.Add(-1) == 0 {
		close(b.done)
	}
}

// pending is one published, unconfirmed message.
type pending struct {
	batch    *pubBatch
	index    int
	id       string // to match a basic.return
	exchange string
	key      string
	size     int
	returned bool
}

// pubChan is one confirm-mode channel of the publisher pool.
type pubChan struct {
	ch     *amqp.Channel
	gen    uint64        // connection generation it belongs to
	window chan struct{} // one token per unconfirmed message

	// lock serializes publishes, so sequence numbers match; a channel of
	// one token rather than a mutex, so that waiting honours ctx.
	lock chan struct{}

	pmu     sync.Mutex
	pending map[uint64]*pending
	dead    bool // the channel is gone and pending was failed
}

// publisher is the pool of confirm channels.
type publisher struct {
	b     *Broker
	mu    sync.Mutex
	chans []*pubChan
	next  atomic.Uint32
}

func newPublisher(b *Broker) *publisher {
	return &publisher{b: b, chans: make([]*pubChan, b.s.PublishChannels)}
}

// channel returns a live pool channel, opening one if needed. While the
// connection is down or failing it waits, bounded by ctx.
func (p *publisher) channel(ctx context.Context) (*pubChan, error) {
	i := int(p.next.Add(1)) % len(p.chans)
	backoff := 20 * time.Millisecond
	for {
		conn, gen, err := p.b.pub.get(ctx)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		pc := p.chans[i]
		if pc != nil && pc.gen == gen && !pc.isDead() {
			p.mu.Unlock()
			return pc, nil
		}
		pc, err = p.open(conn, gen)
		if err == nil {
			p.chans[i] = pc
		}
		p.mu.Unlock()
		if err == nil {
			return pc, nil
		}
		if errors.Is(err, mq.ErrClosed) {
			return nil, err
		}
		// Most likely the connection is closing and the link has not
		// noticed yet; get waits for the next one.
		if serr := sleepCtx(ctx, backoff); serr != nil {
			return nil, fmt.Errorf("rabbitmq: %w (cannot open a publish channel: %v)", serr, err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (p *publisher) open(conn *amqp.Connection, gen uint64) (*pubChan, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	pc := &pubChan{
		ch:      ch,
		gen:     gen,
		window:  make(chan struct{}, p.b.s.ConfirmWindow),
		lock:    make(chan struct{}, 1),
		pending: map[uint64]*pending{},
	}
	// Both are buffered beyond the confirm window, so the connection's
	// reader never waits for us: amqp091-go drops a notification that it
	// cannot hand over within 5 seconds.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, p.b.s.ConfirmWindow+1))
	returns := ch.NotifyReturn(make(chan amqp.Return, p.b.s.ConfirmWindow+1))
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if !p.b.spawn(func() { pc.listen(confirms, returns, closed) }) {
		_ = ch.Close()
		return nil, errClosed
	}
	return pc, nil
}

func (pc *pubChan) isDead() bool {
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	return pc.dead
}

// listen settles pending messages from the channel's confirms and
// returns until the channel closes, then fails what is left.
func (pc *pubChan) listen(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closed <-chan *amqp.Error) {
	var cause *amqp.Error
	for confirms != nil || returns != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.markReturned(&r)
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			// The broker sends a message's basic.return before its
			// basic.ack, and amqp091-go queues them in that order: any
			// return for this message is in the buffer by now.
			pc.drainReturns(returns)
			pc.confirm(c)
		case e, ok := <-closed:
			if ok && e != nil {
				cause = e
			}
			closed = nil
		}
	}
	if closed != nil {
		if e, ok := <-closed; ok && e != nil {
			cause = e
		}
	}
	pc.pmu.Lock()
	pc.dead = true
	left := pc.pending
	pc.pending = nil
	pc.pmu.Unlock()
	for _, pd := range left {
		k, err := channelLostOutcome(cause, pd)
		pd.batch.settle(pd.index, k, err)
	}
}

// drainReturns handles the returns already queued, without waiting.
func (pc *pubChan) drainReturns(returns <-chan amqp.Return) {
	for returns != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				return
			}
			pc.markReturned(&r)
		default:
			return
		}
	}
}

func (pc *pubChan) markReturned(r *amqp.Return) {
	id := r.MessageId
	if id == "" {
		id, _ = r.Headers[hdrID].(string)
	}
	pc.pmu.Lock()
	defer pc.pmu.Unlock()
	var first *pending
	var firstSeq uint64
	for seq, pd := range pc.pending {
		if !pd.returned && pd.id == id && pd.exchange == r.Exchange && pd.key == r.RoutingKey && (first == nil || seq < firstSeq) {
			first, firstSeq = pd, seq
		}
	}
	if first != nil {
		first.returned = true
	}
}

func (pc *pubChan) confirm(c amqp.Confirmation) {
	pc.pmu.Lock()
	pd := pc.pending[c.DeliveryTag]
	delete(pc.pending, c.DeliveryTag)
	pc.pmu.Unlock()
	if pd == nil {
		return
	}
	switch {
	case !c.Ack:
		pd.batch.settle(pd.index, resend, mq.Retryable(errors.New("the broker refused the message (basic.nack)")))
	case pd.returned:
		pd.batch.settle(pd.index, finalErr, fmt.Errorf("rabbitmq: exchange %q: %w: %w", pd.exchange, mq.ErrNotFound, errUnroutable))
	default:
		pd.batch.settle(pd.index, sent, nil)
	}
}

var maxSizeRE = regexp.MustCompile(`max size (\d+)`)

// channelLostOutcome says what to do with a message whose channel closed
// before it was confirmed. A channel error caused by one message (a
// missing exchange, an oversized body) fails only the messages it
// concerns; the rest are resent on a new channel.
func channelLostOutcome(cause *amqp.Error, pd *pending) (outcome, error) {
	if cause != nil {
		switch cause.Code {
		case amqp.NotFound:
			if containsQuoted(cause.Reason, pd.exchange) {
				return finalErr, fmt.Errorf("rabbitmq: exchange %q: %w: %s", pd.exchange, mq.ErrNotFound, cause.Reason)
			}
		case amqp.PreconditionFailed:
			if m := maxSizeRE.FindStringSubmatch(cause.Reason); m != nil {
				if limit, err := strconv.Atoi(m[1]); err == nil && pd.size > limit {
					return finalErr, fmt.Errorf("rabbitmq: %w: the broker refused a body of %d bytes: %s", mq.ErrMessageTooLarge, pd.size, cause.Reason)
				}
			}
		case amqp.AccessRefused:
			if containsQuoted(cause.Reason, pd.exchange) {
				return finalErr, fmt.Errorf("rabbitmq: exchange %q: access refused: %s", pd.exchange, cause.Reason)
			}
		}
		return resend, mq.Retryable(fmt.Errorf("rabbitmq: channel closed before the broker confirmed: %w", cause))
	}
	return resend, mq.Retryable(errors.New("rabbitmq: connection lost before the broker confirmed"))
}

// containsQuoted reports whether reason names name in single quotes, as
// RabbitMQ's error texts do ("no exchange 'x' in vhost '/'").
func containsQuoted(reason, name string) bool {
	return strings.Contains(reason, "'"+name+"'")
}

// outMsg is one message ready for the wire.
type outMsg struct {
	exchange string
	key      string
	pub      amqp.Publishing
}

// send publishes msgs and waits for their confirms, resending messages
// whose channel was lost, until each is confirmed or failed for good or
// ctx ends. It returns one error per message (nil = confirmed). mandatory
// makes an unroutable message fail with ErrNotFound.
func (p *publisher) send(ctx context.Context, msgs []outMsg, mandatory bool) ([]error, error) {
	errs := make([]error, len(msgs))
	todo := make([]int, len(msgs))
	for i := range todo {
		todo[i] = i
	}
	backoff := 10 * time.Millisecond
	for len(todo) > 0 {
		pc, err := p.channel(ctx)
		if err != nil {
			return nil, err
		}
		// A connection blocked by a broker resource alarm stops reading:
		// wait here, bounded by ctx, rather than in a socket write.
		if err := p.b.pub.unblocked(ctx); err != nil {
			return nil, err
		}
		batch, err := pc.publish(ctx, msgs, todo, mandatory)
		if err != nil {
			return nil, err
		}
		select {
		case <-batch.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var again []int
		for j, i := range todo {
			r := batch.results[j]
			errs[i] = r.err
			if r.kind == resend {
				again = append(again, i)
			}
		}
		todo = again
		if len(todo) > 0 {
			if err := sleepCtx(ctx, backoff); err != nil {
				return nil, fmt.Errorf("rabbitmq: %w (last failure: %v)", err, errs[todo[0]])
			}
			backoff = min(backoff*2, time.Second)
		}
	}
	return errs, nil
}

// publish writes the messages msgs[idx...] on pc and returns their batch.
// Messages that could not even be written are settled as resend.
func (pc *pubChan) publish(ctx context.Context, msgs []outMsg, idx []int, mandatory bool) (*pubBatch, error) {
	batch := &pubBatch{
		results: make([]result, len(idx)),
		done:    make(chan struct{}),
		window:  pc.window,
	}
	batch.left.Store(int32(len(idx)))
	select {
	case pc.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-pc.lock }()
	for j, i := range idx {
		m := &msgs[i]
		select {
		case pc.window <- struct{}{}:
		case <-ctx.Done():
			// Messages not written yet: settle them so the window stays
			// balanced; the caller returns ctx.Err().
			for k := j; k < len(idx); k++ {
				batch.record(k, resend, ctx.Err())
			}
			return batch, nil
		}
		pc.pmu.Lock()
		if pc.dead {
			pc.pmu.Unlock()
			batch.settle(j, resend, mq.Retryable(errors.New("rabbitmq: channel closed")))
			continue
		}
		seq := pc.ch.GetNextPublishSeqNo()
		pd := &pending{batch: batch, index: j, id: m.pub.MessageId, exchange: m.exchange, key: m.key, size: len(m.pub.Body)}
		if pd.id == "" {
			pd.id, _ = m.pub.Headers[hdrID].(string)
		}
		pc.pending[seq] = pd
		pc.pmu.Unlock()
		if err := pc.ch.Publish(m.exchange, m.key, mandatory, false, m.pub); err != nil {
			pc.pmu.Lock()
			_, still := pc.pending[seq]
			delete(pc.pending, seq)
			pc.pmu.Unlock()
			if still {
				// A write error (the connection broke) or a closed
				// channel: send it again. The driver only writes header
				// values AMQP can encode, so nothing here is the
				// message's fault.
				batch.settle(j, resend, mq.Retryable(fmt.Errorf("rabbitmq: publish: %w", err)))
			}
		}
	}
	return batch, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
