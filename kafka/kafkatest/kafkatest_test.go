package kafkatest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq/kafka/kafkatest"
)

func uniqueTopic(t testing.TB) string {
	return fmt.Sprintf("mq-smoke-%s-%d", t.Name(), time.Now().UnixNano())
}

// createTopic creates a one-partition topic through the controller.
func createTopic(t *testing.T, ctx context.Context, addrs []string, topic string) {
	t.Helper()
	conn, err := kafka.DialContext(ctx, "tcp", addrs[0])
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	// Wait until the broker serves the new partition.
	for {
		parts, err := conn.ReadPartitions(topic)
		if err == nil && len(parts) == 1 && parts[0].Leader.ID >= 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s has no leader: %v (last error %v)", topic, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func newWriter(addrs []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:            kafka.TCP(addrs...),
		Topic:           topic,
		BatchTimeout:    5 * time.Millisecond,
		RequiredAcks:    kafka.RequireAll,
		MaxAttempts:     20,
		WriteBackoffMin: 100 * time.Millisecond,
		WriteBackoffMax: time.Second,
	}
}

// write retries until ctx ends: a just-created topic is not served at once
// (kafka-go does not retry "Unknown Topic Or Partition" by itself), and a
// writer's connections die with a broker restart.
func write(ctx context.Context, w *kafka.Writer, msgs ...kafka.Message) error {
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil || errors.Is(err, context.Canceled) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readN(t *testing.T, ctx context.Context, addrs []string, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   addrs,
		Topic:     topic,
		Partition: 0,
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read message %d of %d: %v", len(out)+1, n, err)
		}
		out = append(out, m)
	}
	return out
}

func TestSmokeKafka(t *testing.T) {
	addrs := kafkatest.Addrs(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := uniqueTopic(t)
	createTopic(t, ctx, addrs, topic)

	w := newWriter(addrs, topic)
	defer w.Close()
	body := []byte("hello \x00 kafka")
	start := time.Now()
	if err := write(ctx, w, kafka.Message{
		Key:     []byte("k1"),
		Value:   body,
		Headers: []kafka.Header{{Key: "h", Value: []byte("v")}},
	}); err != nil {
		t.Fatalf("write: %v", err)
	}
	t.Logf("write took %v", time.Since(start))

	got := readN(t, ctx, addrs, topic, 1)[0]
	if !bytes.Equal(got.Value, body) || string(got.Key) != "k1" {
		t.Fatalf("got key %q value %q, want k1 %q", got.Key, got.Value, body)
	}
	if len(got.Headers) != 1 || got.Headers[0].Key != "h" || string(got.Headers[0].Value) != "v" {
		t.Fatalf("headers: got %v", got.Headers)
	}
}

func TestSmokeKafkaRestart(t *testing.T) {
	addrs := kafkatest.Addrs(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := uniqueTopic(t)
	createTopic(t, ctx, addrs, topic)

	w := newWriter(addrs, topic)
	defer w.Close()
	if err := write(ctx, w, kafka.Message{Value: []byte("before restart")}); err != nil {
		t.Fatalf("write before restart: %v", err)
	}

	kafkatest.Restart(t) // may first wait for other packages' tests to finish with the broker
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The same writer, connected before the restart, must get through again.
	if err := write(ctx, w, kafka.Message{Value: []byte("after restart")}); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	msgs := readN(t, ctx, addrs, topic, 2)
	if string(msgs[0].Value) != "before restart" || string(msgs[1].Value) != "after restart" {
		t.Fatalf("got %q, %q", msgs[0].Value, msgs[1].Value)
	}
}
