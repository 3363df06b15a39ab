package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka"
)

// Kafka settings shared by the raw and mq contenders.
const (
	kafkaBatchSize      = kafka.DefaultBatchSize    // messages per partition per produce request
	kafkaBatchTimeout   = kafka.DefaultBatchTimeout // 1ms
	kafkaCommitInterval = kafka.DefaultCommitInterval
	kafkaCommitBatch    = 100 // raw: messages per CommitMessages call
)

func kafkaPlan() brokerPlan {
	p := brokerPlan{Name: "kafka", Msgs: 10000, PerConc: true, Batch: 1, LatencyRate: 1000, Lone: true}
	env := os.Getenv("MQ_TEST_KAFKA_ADDR")
	if env == "" {
		p.NA = "MQ_TEST_KAFKA_ADDR is not set (run: eval \"$(scripts/brokers env)\")"
		return p
	}
	addrs := strings.Split(env, ",")
	url := "kafka://" + env + fmt.Sprintf("?batch_size=%d&commit_interval=%s", kafkaBatchSize, kafkaCommitInterval)
	admin := &lazyBroker{url: url}
	open := func(ctx context.Context, _ cell) (mq.Broker, error) { return mq.Open(ctx, url) }
	del := func(ctx context.Context, topic string) error { return deleteKafkaTopic(ctx, addrs, topic) }
	p.Contenders = append(p.Contenders, kafkaRaw(addrs, admin, false), kafkaRaw(addrs, admin, true),
		kafkaFranz(addrs, admin), kafkaSarama(addrs, admin), kafkaFranzConsume(addrs, admin))
	p.Contenders = append(p.Contenders, mqContenders(fmt.Sprintf("kafka:// with acks=all, batch_size=%d, commit_interval=%v (the defaults), topics of %d partitions; Subscribe with Concurrency(conc); one message per Publish", kafkaBatchSize, kafkaCommitInterval, kafka.DefaultPartitions), open, del)...)
	// franz-go compresses with snappy by default, the other contenders
	// send uncompressed: mq+snappy is mq configured as franz-go is.
	snappyURL := url + "&compression=snappy"
	openSnappy := func(ctx context.Context, _ cell) (mq.Broker, error) { return mq.Open(ctx, snappyURL) }
	p.Contenders = append(p.Contenders, mqContender(snappyName, "", "mq as above with compression=snappy, franz-go's default compression (the bodies are a 26-byte cycle, which snappy shrinks about 20-fold)", openSnappy, del, nil))
	p.Contenders = append(p.Contenders,
		watermillKafka("watermill-default", addrs, admin, del, false),
		watermillKafka("watermill-tuned", addrs, admin, del, true))
	return p
}

// deleteKafkaTopic deletes topic (every Kafka contender names its topic
// and nothing else). The consumer groups of the run go with it: Kafka
// drops a deleted topic's committed offsets, and then the empty groups.
func deleteKafkaTopic(ctx context.Context, addrs []string, topic string) error {
	// A transport of its own, closed here, so that no idle admin
	// connection outlives the run and counts in goroutines_after.
	t := &kafkago.Transport{}
	defer t.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(addrs...), Transport: t}
	resp, err := client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		return err
	}
	if err := resp.Errors[topic]; err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	return nil
}

// lazyBroker is an mq broker opened on first use, for creating topics
// outside the measured time.
type lazyBroker struct {
	url  string
	once sync.Once
	b    mq.Broker
	err  error
}

// provision creates topic and waits until a metadata request to the
// cluster lists every partition with a leader, so clients with their own
// metadata caches (kafka-go's Transport, Sarama) do not start with a
// stale "unknown topic".
func (l *lazyBroker) provision(ctx context.Context, topic string, addrs []string) error {
	l.once.Do(func() { l.b, l.err = mq.Open(ctx, l.url) })
	if l.err != nil {
		return l.err
	}
	if err := mq.Provision(ctx, l.b, topic); err != nil {
		return err
	}
	client := &kafkago.Client{Addr: kafkago.TCP(addrs...), Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		resp, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].Error == nil && len(resp.Topics[0].Partitions) == kafka.DefaultPartitions {
			ready := true
			for _, p := range resp.Topics[0].Partitions {
				ready = ready && p.Error == nil && p.Leader.Host != ""
			}
			if ready {
				return nil
			}
		}
		select { // poll the cluster's metadata until the topic is there
		case <-ctx.Done():
			return fmt.Errorf("topic %s not ready: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type kafkaRawRun struct {
	w      *kafkago.Writer
	r      *kafkago.Reader
	addrs  []string
	topic  string
	cancel context.CancelFunc
	done   chan error
	// contract: send an mq-id header with each message (and read it back)
	contract bool
}

func (k *kafkaRawRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	return writeKafka(ctx, k.w, k.topic, k.contract, bodies, sent)
}

// writeKafka is raw's Publish: one WriteMessages call on the shared
// Writer for the bodies, with an mq-id header on each under contract.
func writeKafka(ctx context.Context, w *kafkago.Writer, topic string, contract bool, bodies [][]byte, sent int64) error {
	msgs := make([]kafkago.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = kafkago.Message{Topic: topic, Value: b}
		if sent != 0 {
			msgs[i].Headers = append(msgs[i].Headers, kafkago.Header{Key: sentHeader, Value: []byte(formatSent(sent))})
		}
		if contract {
			msgs[i].Headers = append(msgs[i].Headers, kafkago.Header{Key: "mq-id", Value: []byte(mq.NewID())})
		}
	}
	return w.WriteMessages(ctx, msgs...)
}

// newKafkaWriter is raw's Writer, shared by the publishers.
func newKafkaWriter(addrs []string) *kafkago.Writer {
	return &kafkago.Writer{
		Addr:         kafkago.TCP(addrs...),
		BatchSize:    kafkaBatchSize,
		BatchTimeout: kafkaBatchTimeout,
		RequiredAcks: kafkago.RequireAll,
	}
}

func (k *kafkaRawRun) Close(ctx context.Context) error {
	k.cancel()
	var err error
	select {
	case err = <-k.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := k.r.Close(); err == nil {
		err = cerr
	}
	if werr := k.w.Close(); err == nil {
		err = werr
	}
	return err
}

func (k *kafkaRawRun) Delete(ctx context.Context) error {
	return deleteKafkaTopic(ctx, k.addrs, k.topic)
}

// kafkaRaw is kafka-go used directly, the way its documentation advises
// for throughput with durability: one Writer shared by the publishers
// (acks=all, a 1ms BatchTimeout instead of the 1s default), a group
// Reader with FetchMessage and CommitMessages in batches, committed
// asynchronously every CommitInterval.
//
// With contract, each message also carries what mq's contract puts on
// the wire, a UUIDv7 ID in an mq-id header, read back on receipt, so that
// the gap between it and raw is the contract's cost and the gap between
// mq and it is the driver's.
func kafkaRaw(addrs []string, admin *lazyBroker, contract bool) contender {
	name, role := "raw", "raw"
	note := fmt.Sprintf("kafka-go Writer{RequiredAcks: RequireAll, BatchSize: %d, BatchTimeout: %v} shared by the publishers; Reader{GroupID, CommitInterval: %v} with FetchMessage and CommitMessages every %d messages", kafkaBatchSize, kafkaBatchTimeout, kafkaCommitInterval, kafkaCommitBatch)
	if contract {
		name, role = "raw+contract", ""
		note = "raw, plus what mq's contract carries: an mq-id header holding mq.NewID() on each message, read back as a string on receipt"
	}
	return contender{Name: name, Role: role, Note: note,
		Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
			topic := freshTopic("raw")
			if err := admin.provision(ctx, topic, addrs); err != nil {
				return nil, fmt.Errorf("create topic: %w", err)
			}
			w := newKafkaWriter(addrs)
			k := &kafkaRawRun{w: w, addrs: addrs, topic: topic, contract: contract}
			k.r, k.cancel, k.done = consumeKafka(addrs, topic, contract, recv)
			return k, nil
		}}
}

// consumeKafka starts the consumer every Kafka contender but mq and
// Watermill uses: a kafka-go group Reader with FetchMessage and
// CommitMessages every kafkaCommitBatch messages. It calls recv for each
// message and reports the loop's end on done after cancel.
func consumeKafka(addrs []string, topic string, contract bool, recv func(int64)) (*kafkago.Reader, context.CancelFunc, chan error) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           addrs,
		GroupID:           benchGroup + "-" + topic,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          16 << 20,
		MaxWait:           100 * time.Millisecond,
		StartOffset:       kafkago.FirstOffset,
		CommitInterval:    kafkaCommitInterval,
		HeartbeatInterval: kafka.DefaultHeartbeatInterval,
		SessionTimeout:    kafka.DefaultSessionTimeout,
	})
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		batch := make([]kafkago.Message, 0, kafkaCommitBatch)
		for {
			m, err := r.FetchMessage(rctx)
			if err != nil {
				if len(batch) > 0 {
					cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
					_ = r.CommitMessages(cctx, batch...)
					ccancel()
				}
				if rctx.Err() != nil {
					err = nil
				}
				done <- err
				return
			}
			var sent int64
			var id string
			for _, h := range m.Headers {
				switch h.Key {
				case sentHeader:
					sent = parseSent(string(h.Value))
				case "mq-id":
					id = string(h.Value)
				}
			}
			if contract && id == "" {
				done <- fmt.Errorf("message at offset %d has no mq-id header", m.Offset)
				return
			}
			recv(sent)
			// Commit needs only the position: keeping whole messages
			// (64 KiB bodies included) until the batch is committed
			// would hold 100 bodies alive and set this contender's
			// GC pace apart from mq's, which keeps none.
			batch = append(batch, kafkago.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
			if len(batch) == kafkaCommitBatch {
				if err := r.CommitMessages(rctx, batch...); err != nil && rctx.Err() == nil {
					done <- err
					return
				}
				batch = batch[:0]
			}
		}
	}()
	return r, cancel, done
}

type watermillRun struct {
	pub    message.Publisher
	subs   []message.Subscriber
	topic  string
	del    deleteFunc
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *watermillRun) Publish(_ context.Context, bodies [][]byte, sent int64) error {
	msgs := make([]*message.Message, len(bodies))
	for i, b := range bodies {
		m := message.NewMessage(watermill.NewUUID(), b)
		if sent != 0 {
			m.Metadata.Set(sentHeader, formatSent(sent))
		}
		msgs[i] = m
	}
	return w.pub.Publish(w.topic, msgs...)
}

func (w *watermillRun) Close(context.Context) error {
	w.cancel()
	var errs []error
	for _, s := range w.subs {
		errs = append(errs, s.Close())
	}
	w.wg.Wait()
	errs = append(errs, w.pub.Close())
	return errors.Join(errs...)
}

func (w *watermillRun) Delete(ctx context.Context) error { return w.del(ctx, w.topic) }

// consume starts a goroutine handling a Watermill subscription's messages.
func (w *watermillRun) consume(msgs <-chan *message.Message, recv func(int64)) {
	w.wg.Go(func() {
		for m := range msgs {
			recv(parseSent(m.Metadata.Get(sentHeader)))
			m.Ack()
		}
	})
}

// watermillKafka is watermill-kafka (Sarama underneath). Defaults: its
// default Sarama configs (acks=1, so a Publish is not durable the way
// the others are). Tuned: acks=all like the others, a Kafka 2.8 protocol
// version, 100ms offset auto-commit. Both start new groups at the oldest
// offset so that the warm-up messages published while the group forms
// are not skipped.
func watermillKafka(name string, addrs []string, admin *lazyBroker, del deleteFunc, tuned bool) contender {
	note := "watermill-kafka v3 Publisher/Subscriber with DefaultSaramaSyncPublisherConfig (acks=1: not durable) and DefaultSaramaSubscriberConfig; one subscription"
	if tuned {
		note = "watermill-kafka v3 with Sarama tuned: acks=all, Version 2.8, Consumer.Offsets.AutoCommit.Interval 100ms, Fetch.Default 1 MiB; one subscription (Watermill handles one message at a time per partition)"
	}
	return contender{Name: name, Note: note, Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
		topic := freshTopic("wm")
		if err := admin.provision(ctx, topic, addrs); err != nil {
			return nil, fmt.Errorf("create topic: %w", err)
		}
		pcfg := wkafka.DefaultSaramaSyncPublisherConfig()
		scfg := wkafka.DefaultSaramaSubscriberConfig()
		scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		if tuned {
			pcfg.Producer.RequiredAcks = sarama.WaitForAll
			pcfg.Version = sarama.V2_8_0_0
			scfg.Version = sarama.V2_8_0_0
			scfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
			scfg.Consumer.Fetch.Default = 1 << 20
		}
		pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: addrs, Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: pcfg}, watermill.NopLogger{})
		if err != nil {
			return nil, err
		}
		sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{Brokers: addrs, Unmarshaler: wkafka.DefaultMarshaler{}, ConsumerGroup: benchGroup + "-" + topic, OverwriteSaramaConfig: scfg}, watermill.NopLogger{})
		if err != nil {
			_ = pub.Close()
			return nil, err
		}
		sctx, cancel := context.WithCancel(context.Background())
		w := &watermillRun{pub: pub, subs: []message.Subscriber{sub}, topic: topic, del: del, cancel: cancel}
		msgs, err := sub.Subscribe(sctx, topic)
		if err != nil {
			_ = w.Close(ctx)
			return nil, err
		}
		w.consume(msgs, recv)
		return w, nil
	}}
}
