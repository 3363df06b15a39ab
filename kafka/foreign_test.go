package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq/kafka/kafkatest"
)

// foreignPublisher returns a conformance.Harness.PublishForeign that
// writes a record with kafka-go directly, as a producer that does not use
// mq would: the key as the record key, headers as record headers, no
// mq-id header.
func foreignPublisher(t testing.TB) func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error {
	addrs := kafkatest.Addrs(t)
	return func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error {
		w := &kafka.Writer{
			Addr:         kafka.TCP(addrs...),
			Topic:        topic,
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: 1,
			// A transport of its own, whose metadata is refreshed often:
			// the shared default one may have cached the topic as
			// missing just before the case created it.
			Transport: &kafka.Transport{MetadataTTL: 200 * time.Millisecond},
		}
		defer w.Close()
		km := kafka.Message{Key: key, Value: body}
		for k, v := range headers {
			km.Headers = append(km.Headers, kafka.Header{Key: k, Value: v})
		}
		// A topic created a moment ago may not have a leader yet; the
		// Java producer waits for its metadata too. Bounded by 60 tries
		// (15 s) and ctx.
		var err error
		for range 60 {
			if err = w.WriteMessages(ctx, km); !errors.Is(err, kafka.UnknownTopicOrPartition) && !errors.Is(err, kafka.LeaderNotAvailable) {
				return err
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(250 * time.Millisecond):
			}
		}
		return err
	}
}
