package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seedmq/mq/kafka"
)

// franzConsumeName is the franz-go consume contender: raw's producer,
// franz-go's consumer. The report divides mq's throughput and CPU per
// message by its, per round, next to the mq/raw ratios.
const franzConsumeName = "franz-go-consume"

// franzConsumeRun publishes like raw (kafka-go Writer) and consumes with
// a franz-go group client.
type franzConsumeRun struct {
	w      *kafkago.Writer
	cl     *kgo.Client
	addrs  []string
	topic  string
	cancel context.CancelFunc
	done   chan error
}

func (k *franzConsumeRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	return writeKafka(ctx, k.w, k.topic, false, bodies, sent)
}

func (k *franzConsumeRun) Close(ctx context.Context) error {
	k.cancel()
	var err error
	select {
	case err = <-k.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	k.cl.Close() // leaves the group
	return errors.Join(err, k.w.Close())
}

func (k *franzConsumeRun) Delete(ctx context.Context) error {
	return deleteKafkaTopic(ctx, k.addrs, k.topic)
}

// kafkaFranzConsume is franz-go's kgo client used as its documentation
// shows for at-least-once group consumption: a PollFetches loop that
// handles each partition's records, marks the last one handled
// (MarkCommitRecords), and lets the client commit the marked offsets
// every kafkaCommitInterval (AutoCommitMarks), mq's default commit
// cadence; the marks left are committed when the loop ends. It publishes
// exactly as raw does, so that only the consumer differs from raw.
func kafkaFranzConsume(addrs []string, admin *lazyBroker) contender {
	note := fmt.Sprintf("raw's producer; consumed by a franz-go kgo.Client{ConsumerGroup, ConsumeTopics, ConsumeResetOffset(AtStart), AutoCommitMarks, AutoCommitInterval(%v), SessionTimeout(%v), HeartbeatInterval(%v), FetchMaxWait(100ms) like raw's Reader, defaults otherwise}: a PollFetches loop, MarkCommitRecords of each partition's last record handled, CommitMarkedOffsets at the end",
		kafkaCommitInterval, kafka.DefaultSessionTimeout, kafka.DefaultHeartbeatInterval)
	return contender{Name: franzConsumeName, Note: note,
		Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
			topic := freshTopic("franzc")
			if err := admin.provision(ctx, topic, addrs); err != nil {
				return nil, fmt.Errorf("create topic: %w", err)
			}
			cl, err := kgo.NewClient(
				kgo.SeedBrokers(addrs...),
				kgo.ConsumerGroup(benchGroup+"-"+topic),
				kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.AutoCommitMarks(),
				kgo.AutoCommitInterval(kafkaCommitInterval),
				kgo.SessionTimeout(kafka.DefaultSessionTimeout),
				kgo.HeartbeatInterval(kafka.DefaultHeartbeatInterval),
				kgo.FetchMaxWait(100*time.Millisecond),
			)
			if err != nil {
				return nil, err
			}
			rctx, cancel := context.WithCancel(context.Background())
			k := &franzConsumeRun{w: newKafkaWriter(addrs), cl: cl, addrs: addrs, topic: topic, cancel: cancel, done: make(chan error, 1)}
			go func() { k.done <- pollFranz(rctx, cl, recv) }()
			return k, nil
		}}
}

// pollFranz is the consume loop of kafkaFranzConsume. It returns nil
// when ctx is cancelled and the marked offsets are committed.
func pollFranz(ctx context.Context, cl *kgo.Client, recv func(int64)) error {
	commit := func() error {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		return cl.CommitMarkedOffsets(cctx)
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return commit()
		}
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if ferr == nil && !kerr.IsRetriable(err) {
				ferr = fmt.Errorf("fetch %s[%d]: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			for _, r := range p.Records {
				var sent int64
				for _, h := range r.Headers {
					if h.Key == sentHeader {
						sent = parseSent(string(h.Value))
					}
				}
				recv(sent)
			}
			cl.MarkCommitRecords(p.Records[len(p.Records)-1])
		})
	}
}
