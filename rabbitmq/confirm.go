package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Publishing works like this: a small pool of confirm-mode channels on the
// publish connection is shared by every Publish call. A call takes an idle
// channel if there is one, writes all its messages (mandatory, persistent)
// without waiting, and then waits for their confirms through amqp091-go's
// deferred confirmations, which the connection's reader settles directly:
// no goroutine of ours sits between the broker's ack and the caller. Each
// channel has a confirm window (a semaphore) that bounds unconfirmed
// messages. The broker sends a message's basic.return before its
// basic.ack, and amqp091-go queues the return in the channel's return
// buffer before it settles the confirmation, so whoever sees an ack first
// drains that buffer and then checks whether its message came back.

// returnKey identifies a returned message: its ID, exchange and routing
// key, as a basic.return carries them.
type returnKey struct {
	id, exchange, key string
}

// keyOf returns the returnKey of a message as published.
func keyOf(m *outMsg) returnKey {
	id := m.pub.MessageId
	if id == "" {
		id, _ = m.pub.Headers[hdrID].(string)
	}
	return returnKey{id, m.exchange, m.key}
}

// pubChan is one confirm-mode channel of the publisher pool.
type pubChan struct {
	ch     *amqp.Channel
	gen    uint64        // connection generation it belongs to
	window chan struct{} // one token per unconfirmed message

	// lock serializes publishes, so that a caller's messages go out
	// together; a channel of one token rather than a mutex, so that
	// waiting honours ctx.
	lock chan struct{}

	returns <-chan amqp.Return // basic.return, buffered beyond the window
	closed  <-chan *amqp.Error // the channel's close reason, if any
	rmu     sync.Mutex         // guards the fields below
	came    map[returnKey]int  // returns drained but not yet claimed
	cause   *amqp.Error        // why the channel closed, once known
	causeOK bool               // cause was read from closed
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

// channel returns a live pool channel, opening one if needed. It prefers
// a channel no other Publish is writing on, then an empty slot of the
// pool (opening a channel there), and only then shares a busy channel.
// While the connection is down or failing it waits, bounded by ctx.
func (p *publisher) channel(ctx context.Context) (*pubChan, error) {
	start := int(p.next.Add(1))
	backoff := 20 * time.Millisecond
	for {
		conn, gen, err := p.b.pub.get(ctx)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		n := len(p.chans)
		free := -1
		for k := range n {
			i := (start + k) % n
			pc := p.chans[i]
			if pc == nil || pc.gen != gen || pc.ch.IsClosed() {
				if free < 0 {
					free = i
				}
				continue
			}
			if len(pc.lock) == 0 {
				p.mu.Unlock()
				return pc, nil
			}
		}
		if free < 0 {
			pc := p.chans[start%n]
			p.mu.Unlock()
			return pc, nil
		}
		pc, err := p.open(conn, gen)
		if err == nil {
			p.chans[free] = pc
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
		if serr := driver.Sleep(ctx, backoff); serr != nil {
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
	// The return buffer holds more than the window, so the connection's
	// reader never waits for us (amqp091-go drops a notification that it
	// cannot hand over within 5 seconds); the close reason is sent
	// before the channel's deferred confirmations are failed.
	return &pubChan{
		ch:      ch,
		gen:     gen,
		window:  make(chan struct{}, p.b.s.ConfirmWindow),
		lock:    make(chan struct{}, 1),
		returns: ch.NotifyReturn(make(chan amqp.Return, p.b.s.ConfirmWindow+1)),
		closed:  ch.NotifyClose(make(chan *amqp.Error, 1)),
		came:    map[returnKey]int{},
	}, nil
}

// returned reports whether the broker returned m, whose confirmation has
// arrived as an ack: it moves the returns queued so far into came and
// claims one matching m.
func (pc *pubChan) returned(m *outMsg) bool {
	pc.rmu.Lock()
	defer pc.rmu.Unlock()
	for {
		var r amqp.Return
		var ok bool
		select {
		case r, ok = <-pc.returns:
			if !ok {
				// The channel closed: amqp091-go closed the buffer after
				// handing over every return it had.
				pc.returns = nil
				continue
			}
		default:
			if len(pc.came) == 0 {
				return false
			}
			k := keyOf(m)
			if pc.came[k] == 0 {
				return false
			}
			if pc.came[k]--; pc.came[k] == 0 {
				delete(pc.came, k)
			}
			return true
		}
		id := r.MessageId
		if id == "" {
			id, _ = r.Headers[hdrID].(string)
		}
		pc.came[returnKey{id, r.Exchange, r.RoutingKey}]++
	}
}

// closeCause returns why the closed channel closed (nil: the connection
// was lost or the channel was closed normally).
func (pc *pubChan) closeCause() *amqp.Error {
	pc.rmu.Lock()
	defer pc.rmu.Unlock()
	if !pc.causeOK {
		select {
		case e, ok := <-pc.closed:
			if ok {
				pc.cause = e
			}
			pc.causeOK = true
		default:
			// Not sent (a normal close): there is no cause to wait for.
			pc.causeOK = true
		}
	}
	return pc.cause
}

// result says what became of message m, whose deferred confirmation dc
// has settled, and frees its confirm-window slot.
func (pc *pubChan) result(dc *amqp.DeferredConfirmation, m *outMsg, mandatory bool) (outcome, error) {
	<-pc.window
	switch {
	case dc.Acked():
		if mandatory && pc.returned(m) {
			return finalErr, fmt.Errorf("rabbitmq: exchange %q: %w: %w", m.exchange, mq.ErrNotFound, errUnroutable)
		}
		return sent, nil
	case pc.ch.IsClosed():
		// amqp091-go marks the channel closed before it fails the
		// outstanding confirmations.
		return channelLostOutcome(pc.closeCause(), m)
	default:
		return resend, driver.Retryable(errors.New("the broker refused the message (basic.nack)"))
	}
}

// publish writes todo's first n messages of msgs on pc,
// setting each one's deferred confirmation. A message that could not be
// written gets no confirmation and a retryable error.
// It fails only if ctx ends before it has written anything.
func (pc *pubChan) publish(ctx context.Context, msgs []outMsg, n int, todo indexes, mandatory bool) error {
	select {
	case pc.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-pc.lock }()
	for j := range n {
		i := todo.at(j)
		m := &msgs[i]
		select {
		case pc.window <- struct{}{}:
		case <-ctx.Done():
			// Not written: the caller returns ctx.Err() once it has
			// handed the written ones to abandon.
			for k := j; k < n; k++ {
				msgs[todo.at(k)].dc, msgs[todo.at(k)].err = nil, ctx.Err()
			}
			return nil
		}
		dc, err := pc.ch.PublishWithDeferredConfirm(m.exchange, m.key, mandatory, false, m.pub)
		if err == nil && dc == nil {
			err = errors.New("channel not in confirm mode")
		}
		if err != nil {
			<-pc.window
			// A write error (the connection broke) or a closed channel:
			// send it again. The driver only writes header values AMQP
			// can encode, so nothing here is the message's fault.
			m.dc, m.err = nil, driver.Retryable(fmt.Errorf("rabbitmq: publish: %w", err))
			continue
		}
		m.dc, m.err = dc, nil
	}
	return nil
}
