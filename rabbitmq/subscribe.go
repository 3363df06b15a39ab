package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// subscription is one running Subscribe call.
type subscription struct {
	b     *Broker
	topic string
	queue string
	cfg   driver.SubscribeConfig
	d     *driver.Dispatcher
	tag   string
	ch    *amqp.Channel  // the consuming channel when fetching stopped
	acks  *acker         // its acker
	recv  sync.WaitGroup // receivers, until each has returned
}

// Subscribe consumes the queue of the subscription's group on topic and
// hands each message to h, blocking until ctx ends (returning ctx.Err()),
// the broker is closed (mq.ErrClosed), or a failure reconnecting cannot
// fix, such as a missing queue with NoProvision (mq.ErrNotFound).
//
// The group's queue is declared and bound first unless NoProvision is set
// (see Provision). Up to Concurrency handlers run at once; the prefetch
// count is Options.Prefetch, or twice Concurrency. A handler's nil result
// acks the message. An error sends a copy with the attempt count to a
// delay queue that dead-letters it back to the group's queue after the
// redelivery delay, and then acks the original; a mq.Permanent error
// rejects the message without requeueing (to the queue's dead-letter
// exchange if it has one, else the broker drops it, logged at error
// level). StartAt(mq.Earliest) fails with mq.ErrNotSupported.
//
// When the connection is lost, Subscribe reconnects with backoff and
// resumes consuming; messages that were unacknowledged are redelivered by
// the broker (a quorum queue counts that as an attempt). Subscribe is safe
// for concurrent use; after Close it returns mq.ErrClosed.
func (b *Broker) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
	cfg, exit, err := driver.StartSubscribe(&b.life, topic, h, b.s.Group, mq.Latest, opts)
	if err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	defer exit()
	if err := cfg.RequireGroup(); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	if cfg.StartAt == mq.Earliest {
		return fmt.Errorf("rabbitmq: %w: StartAt(mq.Earliest): a new RabbitMQ queue holds only messages published after it was created (Capabilities.Replay is false)", mq.ErrNotSupported)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// stop ends fetching: Subscribe's ctx ended or Close began.
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	closing := b.life.Closing()
	go func() {
		select {
		case <-closing:
			cancel()
		case <-stop.Done():
		}
	}()

	s := &subscription{b: b, topic: topic, queue: queueName(topic, cfg.Group), cfg: cfg, tag: consumerTag()}
	if err := s.topology(stop, false); err != nil {
		return s.stopReason(ctx, err)
	}
	prefetch := b.s.Prefetch
	if prefetch == 0 {
		prefetch = min(2*cfg.Concurrency, 65535)
	}
	s.d = driver.NewDispatcher(ctx, h, driver.DispatcherConfig{
		Concurrency: cfg.Concurrency,
		MaxPending:  max(prefetch, cfg.Concurrency),
		Logger:      b.s.Logger,
	})
	runErr := s.run(stop, prefetch)

	// Drain: running handlers finish (or are canceled when ctx has ended
	// or Close's ctx ends) and settle; then the channel is closed, which
	// makes the broker requeue whatever was delivered but not handled.
	shutdownCtx := ctx
	if ctx.Err() == nil {
		shutdownCtx = b.life.DrainContext()
	}
	_ = s.d.Shutdown(shutdownCtx)
	s.recv.Wait() // each returns once its handler has; Run refuses new ones
	if s.ch != nil {
		s.acks.drain() // held acks go out before the channel closes
		s.closeChannel(shutdownCtx, s.ch)
	}
	return s.stopReason(ctx, runErr)
}

// stopReason turns why fetching stopped into Subscribe's result.
func (s *subscription) stopReason(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.b.life.Err() != nil {
		return errClosed
	}
	return err
}

// topology declares (or checks) the exchange and the group's queue.
// again forgets what was declared, after a reconnection or a consumer
// cancellation, in case the broker lost them.
func (s *subscription) topology(ctx context.Context, again bool) error {
	t := s.b.topo
	if again {
		t.mu.Lock()
		delete(t.ok, exchangeKey(s.topic))
		delete(t.ok, queueKey(s.queue))
		t.mu.Unlock()
	}
	if err := t.exchange(ctx, s.topic); err != nil {
		return err
	}
	return t.queue(ctx, s.topic, s.cfg.Group)
}

// run consumes until stop ends or a failure that reconnecting cannot fix.
func (s *subscription) run(stop context.Context, prefetch int) error {
	backoff := 50 * time.Millisecond
	for round := 0; ; round++ {
		if round > 0 {
			if err := s.topology(stop, true); err != nil {
				if stop.Err() != nil || !mq.IsRetryable(err) {
					return err
				}
				if err := driver.Sleep(stop, backoff); err != nil {
					return err
				}
				backoff = min(backoff*2, s.b.s.ReconnectMax)
				continue
			}
		}
		conn, _, err := s.b.sub.get(stop)
		if err != nil {
			return err
		}
		ch, deliveries, chCtx, err := s.consume(conn, prefetch)
		if err != nil {
			s.b.s.Logger.Warn("rabbitmq: cannot consume; retrying", "queue", s.queue, "error", err)
			if err := driver.Sleep(stop, backoff); err != nil {
				return err
			}
			backoff = min(backoff*2, s.b.s.ReconnectMax)
			continue
		}
		backoff = 50 * time.Millisecond
		s.cfg.SetConnected(true)
		a := newAcker(ch, s.b.s.Logger, s.queue, prefetch)
		lost := s.receive(stop, ch, chCtx, deliveries, a)
		if lost {
			s.cfg.SetConnected(false)
		}
		if !lost {
			s.cancelConsumer(ch)
			s.ch, s.acks = ch, a
			return nil
		}
		if !ch.IsClosed() {
			// The broker canceled the consumer (queue deleted): start over.
			s.closeChannel(stop, ch)
		}
	}
}

// consume opens a channel with the prefetch and starts the consumer. The
// returned context is canceled when the channel closes: its deliveries
// can no longer be settled, the broker has requeued them.
func (s *subscription) consume(conn *amqp.Connection, prefetch int) (*amqp.Channel, <-chan amqp.Delivery, context.Context, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, nil, err
	}
	chCtx, cancel := context.WithCancel(context.Background())
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if !s.b.spawn(func() {
		<-closed
		cancel()
	}) {
		// Close has closed the connections under a subscription that
		// outlived its grace.
		cancel()
		_ = ch.Close()
		return nil, nil, nil, errClosed
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, nil, nil, err
	}
	deliveries, err := ch.Consume(s.queue, s.tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, nil, nil, err
	}
	return ch, deliveries, chCtx, nil
}

// receive runs Concurrency receivers on one channel's deliveries. Each
// runs the handler of what it receives itself, so a message changes
// goroutine once, from amqp091-go's to its receiver, as it would for a
// plain amqp091-go consumer; that limits the handlers running at once to
// Concurrency. receive returns true once the delivery stream has ended
// (the channel or the consumer went away) and every receiver has
// returned, so that the next channel's receivers never run beside these;
// it returns false as soon as stop ends, while receivers may still be
// finishing a handler (s.recv counts them).
func (s *subscription) receive(stop context.Context, ch *amqp.Channel, chCtx context.Context, deliveries <-chan amqp.Delivery, a *acker) (lost bool) {
	n := s.cfg.Concurrency
	var left atomic.Int32
	left.Store(int32(n))
	ended := make(chan struct{})
	s.recv.Add(n)
	for range n {
		go func() {
			defer s.recv.Done()
			s.pump(stop, ch, chCtx, deliveries, a)
			if left.Add(-1) == 0 {
				close(ended)
			}
		}()
	}
	select {
	case <-ended:
		return stop.Err() == nil
	case <-stop.Done():
		return false
	}
}

// pump is one receiver: it handles deliveries one at a time until stop
// ends or the delivery stream ends.
func (s *subscription) pump(stop context.Context, ch *amqp.Channel, chCtx context.Context, deliveries <-chan amqp.Delivery, a *acker) {
	for {
		select {
		case <-stop.Done():
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			// One boxed copy of the delivery serves Message.As and Settle.
			var raw any = d
			m := decode(&d, s.topic, s.cfg.Group, s.queue, raw)
			a.delivered(d.DeliveryTag)
			del := &driver.Delivery{Msg: m, Settler: s.settler(ch, chCtx, a, raw, m)}
			if err := s.d.Run(stop, del); err != nil {
				// Not taken (stop ended): left unacknowledged, closing
				// the channel requeues it.
				return
			}
		}
	}
}

// cancelConsumer stops new deliveries before draining. It does not wait
// for the broker's reply (a waiting basic.cancel could take the reply of
// the channel.close that follows); deliveries still in flight are
// dropped by amqp091-go and requeued by the broker when the channel
// closes.
func (s *subscription) cancelConsumer(ch *amqp.Channel) {
	_ = ch.Cancel(s.tag, true)
}

// closeChannel closes the consuming channel, which makes the broker
// requeue what was delivered but not settled. The close is ordered after
// the acks already written; waiting for the broker's close-ok is bounded:
// by 10s, or by driver.CloseGrace once ctx (Subscribe's, or Close's drain
// context) has ended, so that a stalled network cannot hold Subscribe
// long after its ctx ends. The close goes on in the background.
func (s *subscription) closeChannel(ctx context.Context, ch *amqp.Channel) {
	done := make(chan struct{})
	if !s.b.spawn(func() {
		defer close(done)
		_ = ch.Close()
	}) {
		// Close has closed the connection, and with it ch.
		return
	}
	wait := 10 * time.Second
	if ctx.Err() != nil {
		wait = driver.CloseGrace
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.b.s.Logger.Warn("rabbitmq: the broker did not confirm closing a consumer channel in time", "queue", s.queue, "waited", wait)
	}
}

// consumerTag returns a unique consumer tag.
func consumerTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mq-" + hex.EncodeToString(b[:])
}
