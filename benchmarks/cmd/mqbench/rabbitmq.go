package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/rabbitmq" // registers amqp://
)

// rabbitPrefetch is the consumer prefetch of every RabbitMQ contender
// (at least 100, and twice the handler concurrency).
func rabbitPrefetch(conc int) int { return max(100, 2*conc) }

func rabbitPlan() brokerPlan {
	p := brokerPlan{Name: "rabbitmq", Msgs: 10000, PerConc: true, Batch: 1, LatencyRate: 1000}
	base := os.Getenv("MQ_TEST_AMQP_URL")
	if base == "" {
		p.NA = "MQ_TEST_AMQP_URL is not set (run: eval \"$(scripts/brokers env)\")"
		return p
	}
	open := func(ctx context.Context, c cell) (mq.Broker, error) {
		return mq.Open(ctx, fmt.Sprintf("%s?prefetch=%d&publish_channels=%d", base, rabbitPrefetch(c.Conc), c.Conc))
	}
	// The driver declares a fanout exchange named topic and, for each
	// group, a queue topic.group (rabbitmq/topology.go). Its delay queues
	// (topic.group.mq-delay-<ms>) and the DeadLetter middleware's
	// topic-dlq come only from failed messages, which no handler here
	// returns.
	del := func(ctx context.Context, topic string) error {
		return deleteRabbit(ctx, base, topic, topic+"."+benchGroup)
	}
	p.Contenders = append(p.Contenders, rabbitRaw(base))
	p.Contenders = append(p.Contenders, mqContenders("amqp:// with quorum queues (the default), persistent mandatory messages, publish_channels=conc, prefetch=max(100, 2·conc); Subscribe with Concurrency(conc); one message per Publish", open, del)...)
	p.Contenders = append(p.Contenders, watermillAMQP("watermill-default", base, false), watermillAMQP("watermill-tuned", base, true))
	return p
}

type rabbitRawRun struct {
	base             string
	pubConn, subConn *amqp.Connection
	chans            chan *amqp.Channel
	sub              *amqp.Channel
	topic, queue     string
	wg               sync.WaitGroup
}

func (r *rabbitRawRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	var ch *amqp.Channel
	select {
	case ch = <-r.chans:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { r.chans <- ch }()
	confirms := make([]*amqp.DeferredConfirmation, len(bodies))
	for i, b := range bodies {
		p := amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: mq.NewID(), Body: b}
		if sent != 0 {
			p.Headers = amqp.Table{sentHeader: formatSent(sent)}
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, r.topic, "", true, false, p)
		if err != nil {
			return err
		}
		confirms[i] = dc
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("broker nacked a message")
		}
	}
	return nil
}

func (r *rabbitRawRun) Close(context.Context) error {
	err := r.sub.Close()
	r.wg.Wait()
	if cerr := r.pubConn.Close(); err == nil {
		err = cerr
	}
	if cerr := r.subConn.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *rabbitRawRun) Delete(ctx context.Context) error {
	return deleteRabbit(ctx, r.base, r.topic, r.queue)
}

// deleteRabbit deletes queues, then exchange, all durable: they outlive
// the connections that declared them. Deleting a queue or an exchange
// that is not there succeeds on RabbitMQ.
func deleteRabbit(ctx context.Context, base, exchange string, queues ...string) error {
	conn, err := amqp.DialConfig(base, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return err
	}
	defer conn.Close()
	// amqp091-go's calls take no context: closing the connection when
	// ctx ends makes a pending one return.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	for _, q := range queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			return fmt.Errorf("delete queue %s: %w", q, err)
		}
	}
	if err := ch.ExchangeDelete(exchange, false, false); err != nil {
		return fmt.Errorf("delete exchange %s: %w", exchange, err)
	}
	return nil
}

// rabbitRaw is amqp091-go used directly the way RabbitMQ's documentation
// advises for reliable throughput: a durable fanout exchange and a quorum
// queue as mq declares them, one confirm-mode channel per publisher,
// persistent mandatory messages with deferred confirms, and a consumer on
// a separate connection with prefetch max(100, 2·conc), conc goroutines
// acknowledging deliveries.
func rabbitRaw(base string) contender {
	return contender{Name: "raw", Role: "raw", Note: "amqp091-go: durable fanout exchange + quorum queue; one confirm-mode channel per publisher goroutine, persistent mandatory messages, PublishWithDeferredConfirm + WaitContext; consumer connection with Qos(max(100, 2·conc)) and conc goroutines acking each delivery",
		Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
			pubConn, err := amqp.Dial(base)
			if err != nil {
				return nil, err
			}
			subConn, err := amqp.Dial(base)
			if err != nil {
				_ = pubConn.Close()
				return nil, err
			}
			fail := func(err error) (run, error) {
				_ = pubConn.Close()
				_ = subConn.Close()
				return nil, err
			}
			topic := freshTopic("raw")
			queue := topic + "." + benchGroup
			admin, err := pubConn.Channel()
			if err != nil {
				return fail(err)
			}
			if err := admin.ExchangeDeclare(topic, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
				return fail(err)
			}
			args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-expires": int64(10 * time.Minute / time.Millisecond)}
			if _, err := admin.QueueDeclare(queue, true, false, false, false, args); err != nil {
				return fail(err)
			}
			if err := admin.QueueBind(queue, "", topic, false, nil); err != nil {
				return fail(err)
			}
			_ = admin.Close()
			r := &rabbitRawRun{base: base, pubConn: pubConn, subConn: subConn, chans: make(chan *amqp.Channel, c.Conc), topic: topic, queue: queue}
			for range c.Conc {
				ch, err := pubConn.Channel()
				if err != nil {
					return fail(err)
				}
				if err := ch.Confirm(false); err != nil {
					return fail(err)
				}
				r.chans <- ch
			}
			if r.sub, err = subConn.Channel(); err != nil {
				return fail(err)
			}
			if err := r.sub.Qos(rabbitPrefetch(c.Conc), 0, false); err != nil {
				return fail(err)
			}
			deliveries, err := r.sub.Consume(queue, "", false, false, false, false, nil)
			if err != nil {
				return fail(err)
			}
			for range c.Conc {
				r.wg.Go(func() {
					for d := range deliveries {
						s, _ := d.Headers[sentHeader].(string)
						recv(parseSent(s))
						_ = d.Ack(false)
					}
				})
			}
			return r, nil
		}}
}

// watermillAMQP is watermill-amqp's durable pub/sub configuration.
// Defaults: no publisher confirms (Publish returns before the broker has
// the message), prefetch 1, classic queue, one subscription. Tuned:
// publisher confirms, a channel pool of conc, prefetch max(100, 2·conc),
// quorum queues, conc subscriptions (competing consumers on the queue).
func watermillAMQP(name, base string, tuned bool) contender {
	note := "watermill-amqp v3 NewDurablePubSubConfig defaults: no publisher confirms (not durable on return), prefetch 1, classic queue, one subscription"
	if tuned {
		note = "watermill-amqp v3 tuned: Publish.ConfirmDelivery, Publish.ChannelPoolSize=conc, Qos prefetch max(100, 2·conc), quorum queue, conc Subscribe calls on one Subscriber (competing consumers)"
	}
	return contender{Name: name, Note: note, Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
		topic := freshTopic("wm")
		cfg := wamqp.NewDurablePubSubConfig(base, wamqp.GenerateQueueNameTopicNameWithSuffix(benchGroup))
		subs := 1
		if tuned {
			cfg.Publish.ConfirmDelivery = true
			cfg.Publish.ChannelPoolSize = c.Conc
			cfg.Consume.Qos.PrefetchCount = rabbitPrefetch(c.Conc)
			cfg.Queue.Arguments = amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
			subs = c.Conc
		}
		pub, err := wamqp.NewPublisher(cfg, watermill.NopLogger{})
		if err != nil {
			return nil, err
		}
		// Watermill names the exchange and the queue with the config's
		// generators: topic and topic_bench here.
		del := func(ctx context.Context, topic string) error {
			return deleteRabbit(ctx, base, cfg.Exchange.GenerateName(topic), cfg.Queue.GenerateName(topic))
		}
		sctx, cancel := context.WithCancel(context.Background())
		w := &watermillRun{pub: pub, topic: topic, del: del, cancel: cancel}
		sub, err := wamqp.NewSubscriber(cfg, watermill.NopLogger{})
		if err != nil {
			_ = w.Close(ctx)
			return nil, err
		}
		w.subs = append(w.subs, sub)
		for range subs {
			msgs, err := sub.Subscribe(sctx, topic)
			if err != nil {
				_ = w.Close(ctx)
				return nil, err
			}
			w.consume(msgs, recv)
		}
		return w, nil
	}}
}

// rabbitVersion asks the RabbitMQ server for its version ("" if it
// cannot).
func rabbitVersion() string {
	base := os.Getenv("MQ_TEST_AMQP_URL")
	if base == "" {
		return ""
	}
	conn, err := amqp.DialConfig(base, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return ""
	}
	defer conn.Close()
	v, _ := conn.Properties["version"].(string)
	return v
}
