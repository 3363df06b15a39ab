package memory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// subscription is one running Subscribe call.
type subscription struct {
	b       *Broker
	g       *group
	cfg     driver.SubscribeConfig
	closing <-chan struct{}     // the broker's Lifecycle.Closing
	room    chan struct{}       // one token per message taken and not yet settled
	held    map[*pending]uint64 // leases taken and not settled; guarded by the server lock
}

// Subscribe delivers topic's messages for the subscription's group to h.
// See mq.Subscriber for the contract. Messages of one Key are delivered
// one at a time, in publish order, across every subscription of the
// group; a failed message holds back later messages of its key until it
// is acknowledged. A subscription takes a few messages ahead of its
// handlers (see the package documentation). A handler's mq.Permanent
// error is logged at error level and the message dropped: the memory
// driver has no dead-letter target of its own (use the dead-letter
// middleware).
func (b *Broker) Subscribe(ctx context.Context, topicName string, h mq.Handler, opts ...mq.SubscribeOption) error {
	cfg, exit, err := driver.StartSubscribe(&b.life, topicName, h, b.opts.Group, mq.Latest, opts)
	if err != nil {
		return fmt.Errorf("memory: Subscribe: %w", err)
	}
	defer exit()
	if err := cfg.RequireGroup(); err != nil {
		return fmt.Errorf("memory: Subscribe: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g, err := b.join(topicName, cfg)
	if err != nil {
		return err
	}
	ahead := cfg.Concurrency + prefetch(cfg.Concurrency, b.opts.AckDeadline)
	s := &subscription{
		b: b, g: g, cfg: cfg, closing: b.life.Closing(),
		room: make(chan struct{}, ahead), held: map[*pending]uint64{},
	}
	b.mu.Lock()
	b.live[s] = struct{}{}
	b.mu.Unlock()
	cfg.SetConnected(true)
	defer func() {
		b.mu.Lock()
		delete(b.live, s)
		b.mu.Unlock()
	}()

	d := driver.NewDispatcher(ctx, h, driver.DispatcherConfig{Concurrency: cfg.Concurrency, MaxPending: ahead, Logger: b.log})
	err = s.fetch(ctx, d)
	if errors.Is(err, mq.ErrClosed) {
		// Close's ctx bounds the drain; if it ends first, Close reports
		// that, and Subscribe still reports why it stopped.
		d.Shutdown(b.life.DrainContext())
		return fmt.Errorf("memory: Subscribe: %w", mq.ErrClosed)
	}
	d.Shutdown(ctx) // ctx is done: cancel handlers, wait, settle
	return err
}

// prefetch is how many messages a subscription leases beyond those its
// handlers run, so that a handler finishing finds the next message
// already waiting instead of waiting for the fetch loop, as RabbitMQ's
// prefetch and SQS's batched receive do. Prefetched messages not yet
// handled go back to the group unhandled when the subscription stops.
// With an ack deadline there is none: a message's deadline must not run
// while it waits behind another.
func prefetch(concurrency int, ackDeadline time.Duration) int {
	if ackDeadline > 0 {
		return 0
	}
	return min(max(concurrency, 8), 16)
}

// join finds or creates the group on the server.
func (b *Broker) join(topicName string, cfg driver.SubscribeConfig) (*group, error) {
	srv := b.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	t := srv.topics[topicName]
	if t == nil {
		if b.opts.NoProvision {
			return nil, fmt.Errorf("memory: %w: topic %q does not exist and provisioning is off; call Provision first", mq.ErrNotFound, topicName)
		}
		t = srv.newTopic(topicName)
	}
	g := t.groups[cfg.Group]
	if g == nil {
		if b.opts.NoProvision {
			return nil, fmt.Errorf("memory: %w: group %q of topic %q does not exist and provisioning is off; call Provision first", mq.ErrNotFound, cfg.Group, topicName)
		}
		g = newGroup(topicName, cfg.Group)
		if cfg.StartAt == mq.Earliest {
			replay := make([]pending, 0, t.log.n)
			t.log.all(func(e *entry) {
				replay = append(replay, pending{})
				g.add(e, &replay[len(replay)-1])
			})
		}
		t.groups[cfg.Group] = g
	}
	return g, nil
}

// fetch takes messages from the group while there is room and submits
// them, until ctx ends (returning its error) or the broker closes
// (returning mq.ErrClosed). It takes as many as there is room for under
// one lock, so a backlog costs one lock round trip per batch, not per
// message.
func (s *subscription) fetch(ctx context.Context, d *driver.Dispatcher) error {
	srv := s.b.srv
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	done := ctx.Done()
	batch := make([]taken, cap(s.room))
	for {
		// Non-blocking receives on channels nobody has closed take no
		// lock, so the common case checks for a stop cheaply.
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		select {
		case <-s.closing:
			return mq.ErrClosed
		default:
		}
		select {
		case s.room <- struct{}{}:
		default:
			select {
			case s.room <- struct{}{}:
			case <-done:
				return ctx.Err()
			case <-s.closing:
				return mq.ErrClosed
			}
		}
		room := 1 // tokens held in s.room
	claim:
		for room < len(batch) {
			select {
			case s.room <- struct{}{}:
				room++
			default:
				break claim
			}
		}
		for {
			srv.mu.Lock()
			n := 0
			var next time.Time
			for n < room {
				var p *pending
				if p, next = s.g.take(); p == nil {
					break
				}
				s.held[p] = p.lease
				batch[n] = taken{p, p.lease, p.attempts}
				n++
			}
			var signal <-chan struct{}
			if n == 0 {
				signal = s.g.wait()
			}
			srv.mu.Unlock()
			if n > 0 {
				for ; room > n; room-- {
					<-s.room
				}
				if err := s.submit(ctx, d, batch[:n]); err != nil {
					return err
				}
				clear(batch[:n])
				break
			}
			for ; room > 1; room-- {
				<-s.room // keep one token while waiting
			}
			var wake <-chan time.Time
			if !next.IsZero() {
				if timer == nil {
					timer = time.NewTimer(time.Until(next))
				} else {
					timer.Reset(time.Until(next))
				}
				wake = timer.C
			}
			select {
			case <-signal:
			case <-wake:
			case <-done:
				<-s.room
				return ctx.Err()
			case <-s.closing:
				<-s.room
				return mq.ErrClosed
			}
			if timer != nil && !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

// taken is a message fetch leased, with what it read under the lock.
type taken struct {
	p       *pending
	lease   uint64
	attempt int
}

// submit hands leased messages to the dispatcher, each holding one token
// of s.room. If the dispatcher refuses one, it and those after it go back
// to the group unhandled, their tokens are returned, and submit returns
// why fetch must stop: mq.ErrClosed or ctx's error.
func (s *subscription) submit(ctx context.Context, d *driver.Dispatcher, ts []taken) error {
	for i, t := range ts {
		err := d.Submit(ctx, s.delivery(t))
		if err == nil {
			continue
		}
		srv := s.b.srv
		srv.mu.Lock()
		for _, t := range ts[i:] {
			if s.held[t.p] == t.lease {
				delete(s.held, t.p)
				s.g.retry(t.p, t.lease, 0, false)
			}
		}
		srv.mu.Unlock()
		for range ts[i:] {
			<-s.room
		}
		if errors.Is(err, mq.ErrClosed) {
			return err
		}
		return ctx.Err()
	}
	return nil
}
