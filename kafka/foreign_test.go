package kafka_test

import (
	"context"
	"errors"
	"net"
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
		// A topic created a moment ago may not have a leader yet, and a
		// broker that has just restarted may still be loading its
		// partitions; the Java producer waits and retries too. Bounded by
		// 60 tries (15 s) and ctx.
		var err error
		for range 60 {
			if err = w.WriteMessages(ctx, km); !foreignRetryable(ctx, err) {
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

// foreignRetryable reports whether a failed write of the foreign publisher
// is worth another try: the topic or its leader is not ready yet, or an
// attempt timed out (kafka-go bounds each attempt by its own timeouts)
// while ctx still runs.
func foreignRetryable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary() || errors.Is(err, kafka.UnknownTopicOrPartition) || errors.Is(err, kafka.LeaderNotAvailable)
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
