package rabbitmq

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Provision declares topic's exchange and a durable queue for each group,
// bound to it, so that messages published from now on wait in those
// queues until a subscriber takes them. It is idempotent. With
// NoProvision it only checks that they exist, returning an error wrapping
// mq.ErrNotFound if one does not.
func (b *Broker) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := driver.ValidateName("topic", topic); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	for _, g := range groups {
		if err := driver.ValidateName("group", g); err != nil {
			return fmt.Errorf("rabbitmq: %w", err)
		}
	}
	exit, err := b.life.Enter()
	if err != nil {
		return errClosed
	}
	defer exit()
	if err := b.topo.exchange(ctx, topic); err != nil {
		return err
	}
	for _, g := range groups {
		if err := b.topo.queue(ctx, topic, g); err != nil {
			return err
		}
	}
	return nil
}

// topology declares (or, with NoProvision, checks) exchanges and queues,
// remembering what it has done so that Publish and Subscribe pay for a
// declaration once per topic or queue, not per call.
type topology struct {
	b  *Broker
	mu sync.Mutex
	ok map[entity]time.Time // declared -> valid until (zero: forever)
}

// entity names an exchange or a queue.
type entity struct {
	queue bool
	name  string
}

func exchangeKey(name string) entity { return entity{false, name} }
func queueKey(name string) entity    { return entity{true, name} }

func newTopology(b *Broker) *topology {
	return &topology{b: b, ok: map[entity]time.Time{}}
}

// queueName is the queue of group on topic. Queue names are global in a
// vhost, so the topic is part of it.
func queueName(topic, group string) string { return topic + "." + group }

func (t *topology) known(key entity) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.ok[key]
	return ok && (until.IsZero() || time.Now().Before(until))
}

// remember records a declaration, valid for d (0: forever).
func (t *topology) remember(key entity, d time.Duration) {
	var until time.Time
	if d > 0 {
		until = time.Now().Add(d)
	}
	t.mu.Lock()
	t.ok[key] = until
	t.mu.Unlock()
}

func (t *topology) forgetExchange(name string) { t.forget(exchangeKey(name)) }

func (t *topology) forget(key entity) {
	t.mu.Lock()
	delete(t.ok, key)
	t.mu.Unlock()
}

// exchange declares topic's exchange, durable, of the configured type.
func (t *topology) exchange(ctx context.Context, topic string) error {
	key := exchangeKey(topic)
	if t.known(key) {
		return nil
	}
	s := t.b.s
	err := t.do(ctx, func(ch *amqp.Channel) error {
		if s.NoProvision {
			return ch.ExchangeDeclarePassive(topic, s.ExchangeType, true, false, false, false, nil)
		}
		return ch.ExchangeDeclare(topic, s.ExchangeType, true, false, false, false, nil)
	})
	if err != nil {
		return declareError("exchange", topic, err)
	}
	t.remember(key, 0)
	return nil
}

// queue declares group's queue on topic and binds it to the exchange,
// which must have been declared.
func (t *topology) queue(ctx context.Context, topic, group string) error {
	name := queueName(topic, group)
	key := queueKey(name)
	if t.known(key) {
		return nil
	}
	if len(name) > 255-len(".mq-delay-4294967295") {
		return fmt.Errorf("rabbitmq: %w: queue name %q (topic.group) is %d bytes; with the driver's suffixes RabbitMQ allows %d", mq.ErrInvalidOption, name, len(name), 255-len(".mq-delay-4294967295"))
	}
	s := t.b.s
	err := t.do(ctx, func(ch *amqp.Channel) error {
		if s.NoProvision {
			_, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
			return err
		}
		args := amqp.Table{}
		if s.QueueType == QueueQuorum {
			args[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
		}
		if s.DeadLetterExchange != "" {
			args["x-dead-letter-exchange"] = s.DeadLetterExchange
		}
		if s.QueueExpires > 0 {
			args["x-expires"] = s.QueueExpires.Milliseconds()
		}
		if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
			return err
		}
		return ch.QueueBind(name, s.BindingKey, topic, false, nil)
	})
	if err != nil {
		return declareError("queue", name, err)
	}
	t.remember(key, s.QueueExpires/2)
	return nil
}

// delayQueue returns the name of queue's delay queue for a delay of ms
// milliseconds, declaring it if needed: messages wait there for ms and are
// then dead-lettered back to queue through the default exchange.
func (t *topology) delayQueue(ctx context.Context, queue string, ms int64) (string, error) {
	name := queue + ".mq-delay-" + strconv.FormatInt(ms, 10)
	key := queueKey(name)
	if t.known(key) {
		return name, nil
	}
	s := t.b.s
	err := t.do(ctx, func(ch *amqp.Channel) error {
		args := amqp.Table{
			"x-message-ttl":             ms,
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": queue,
		}
		if s.QueueType == QueueQuorum {
			args[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
			// Quorum queues dead-letter at most once unless asked;
			// at-least-once needs reject-publish overflow.
			args["x-dead-letter-strategy"] = "at-least-once"
			args["x-overflow"] = "reject-publish"
		}
		if s.QueueExpires > 0 {
			// Unused for QueueExpires after its last declaration (below,
			// at most QueueExpires/2 ago) plus the longest a message
			// waits in it: a message never expires with its queue.
			args["x-expires"] = s.QueueExpires.Milliseconds() + ms
		}
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		return err
	})
	if err != nil {
		return "", declareError("delay queue", name, err)
	}
	t.remember(key, s.QueueExpires/2)
	return name, nil
}

// do runs f on a fresh channel of the publishing connection, waiting for
// the connection while it is down and retrying f when the connection is
// lost under it, all within ctx. A channel error (which closes the
// channel) is returned as it is.
func (t *topology) do(ctx context.Context, f func(ch *amqp.Channel) error) error {
	backoff := 20 * time.Millisecond
	for {
		conn, _, err := t.b.pub.get(ctx)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		started := t.b.spawn(func() {
			ch, err := conn.Channel()
			if err != nil {
				done <- err
				return
			}
			err = f(ch)
			if err == nil || !ch.IsClosed() {
				_ = ch.Close()
			}
			done <- err
		})
		if !started {
			return errClosed
		}
		select {
		case err = <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err == nil || !connectionLost(err, conn) {
			return err
		}
		if err := driver.Sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, time.Second)
	}
}
