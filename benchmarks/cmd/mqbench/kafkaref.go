package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The Kafka reference producers: the clients a Kafka user would pick
// instead of mq, each publishing synchronously the way its documentation
// shows. They consume with the same kafka-go group Reader as raw, so that
// only the producer differs between them, raw and the mq driver.

// refRun is a reference producer with raw's consumer.
type refRun struct {
	publish func(ctx context.Context, bodies [][]byte, sent int64) error
	close   func() error
	r       *kafkago.Reader
	addrs   []string
	topic   string
	cancel  context.CancelFunc
	done    chan error
}

func (k *refRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	return k.publish(ctx, bodies, sent)
}

func (k *refRun) Close(ctx context.Context) error {
	k.cancel()
	var err error
	select {
	case err = <-k.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return errors.Join(err, k.r.Close(), k.close())
}

func (k *refRun) Delete(ctx context.Context) error {
	return deleteKafkaTopic(ctx, k.addrs, k.topic)
}

// startRef creates a fresh topic, starts raw's consumer on it and
// attaches the producer made by open.
func startRef(ctx context.Context, prefix string, addrs []string, admin *lazyBroker, recv func(int64),
	open func(topic string) (publish func(context.Context, [][]byte, int64) error, closeFn func() error, err error)) (run, error) {
	topic := freshTopic(prefix)
	if err := admin.provision(ctx, topic, addrs); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	publish, closeFn, err := open(topic)
	if err != nil {
		return nil, err
	}
	k := &refRun{publish: publish, close: closeFn, addrs: addrs, topic: topic}
	k.r, k.cancel, k.done = consumeKafka(addrs, topic, false, recv)
	return k, nil
}

// kafkaFranz is franz-go's kgo client with its defaults (idempotent
// producer, default linger, snappy compression) and acks=all, publishing
// with ProduceSync.
func kafkaFranz(addrs []string, admin *lazyBroker) contender {
	return contender{Name: "franz-go",
		Note: "franz-go kgo.Client{RequiredAcks(AllISRAcks()), defaults otherwise: idempotent, default linger, snappy compression} shared by the publishers, ProduceSync per call; consumed by raw's kafka-go Reader",
		Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
			return startRef(ctx, "franz", addrs, admin, recv, func(topic string) (func(context.Context, [][]byte, int64) error, func() error, error) {
				cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
				if err != nil {
					return nil, nil, err
				}
				publish := func(ctx context.Context, bodies [][]byte, sent int64) error {
					recs := make([]*kgo.Record, len(bodies))
					for i, b := range bodies {
						recs[i] = &kgo.Record{Value: b}
						if sent != 0 {
							recs[i].Headers = []kgo.RecordHeader{{Key: sentHeader, Value: []byte(formatSent(sent))}}
						}
					}
					return cl.ProduceSync(ctx, recs...).FirstErr()
				}
				return publish, func() error { cl.Close(); return nil }, nil
			})
		}}
}

// kafkaSarama is Sarama's SyncProducer with acks=all (WaitForAll),
// defaults otherwise.
func kafkaSarama(addrs []string, admin *lazyBroker) contender {
	return contender{Name: "sarama",
		Note: "IBM/sarama SyncProducer{RequiredAcks: WaitForAll, Return.Successes}, defaults otherwise, shared by the publishers, SendMessages per call; consumed by raw's kafka-go Reader",
		Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
			return startRef(ctx, "sarama", addrs, admin, recv, func(topic string) (func(context.Context, [][]byte, int64) error, func() error, error) {
				cfg := sarama.NewConfig()
				cfg.Producer.RequiredAcks = sarama.WaitForAll
				cfg.Producer.Return.Successes = true
				p, err := sarama.NewSyncProducer(addrs, cfg)
				if err != nil {
					return nil, nil, err
				}
				publish := func(_ context.Context, bodies [][]byte, sent int64) error {
					msgs := make([]*sarama.ProducerMessage, len(bodies))
					for i, b := range bodies {
						msgs[i] = &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(b)}
						if sent != 0 {
							msgs[i].Headers = []sarama.RecordHeader{{Key: []byte(sentHeader), Value: []byte(formatSent(sent))}}
						}
					}
					if len(msgs) == 1 {
						_, _, err := p.SendMessage(msgs[0])
						return err
					}
					return p.SendMessages(msgs)
				}
				return publish, p.Close, nil
			})
		}}
}
