package rabbitmq_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// Benchmark settings shared by the mq and raw sub-benchmarks, so both are
// tuned the same way: quorum queue, persistent messages, mandatory
// publishing with publisher confirms on benchPubChannels channels,
// benchPublishers goroutines each publishing a batch of messages (one, or
// benchBatch) and waiting for their confirms, one consumer with prefetch
// benchPrefetch acking every message.
const (
	benchPublishers  = 8
	benchPubChannels = 2
	benchPrefetch    = 64
	benchBodySize    = 256
	benchBatch       = 50
)

// BenchmarkPublishConsume measures publish+consume throughput through mq
// and through amqp091-go used directly. Each op is one message published
// (confirmed) and consumed (acked). The single variants publish one
// message per call (latency-bound: each publisher waits for its
// confirm); the batch variants publish benchBatch messages per call.
func BenchmarkPublishConsume(b *testing.B) {
	base := rabbitmqtest.URL(b)
	body := make([]byte, benchBodySize)
	b.Run("single/mq", func(b *testing.B) { benchMQ(b, base, body, 1) })
	b.Run("single/raw", func(b *testing.B) { benchRaw(b, base, body, 1) })
	b.Run("batch/mq", func(b *testing.B) { benchMQ(b, base, body, benchBatch) })
	b.Run("batch/raw", func(b *testing.B) { benchRaw(b, base, body, benchBatch) })
}

// split runs f for n items, in batches of up to size, over
// benchPublishers goroutines and returns the first error.
func split(n, size int, f func(count int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range benchPublishers {
		wg.Go(func() {
			for {
				end := int(next.Add(int64(size)))
				count := min(size, n-(end-size))
				if count <= 0 {
					return
				}
				if err := f(count); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

func benchMQ(b *testing.B, base string, body []byte, size int) {
	ctx := context.Background()
	br := open(b, fmt.Sprintf("prefetch=%d&publish_channels=%d", benchPrefetch, benchPubChannels))
	topic := uniqueTopic(b)
	if err := mq.Provision(ctx, br, topic, "bench"); err != nil {
		b.Fatalf("Provision: %v", err)
	}
	var got atomic.Int64
	all := make(chan struct{})
	target := int64(b.N)
	subscribe(b, br, topic, func(ctx context.Context, m *mq.Message) error {
		if got.Add(1) == target {
			close(all)
		}
		return nil
	}, mq.Group("bench"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	err := split(b.N, size, func(count int) error {
		msgs := make([]*mq.Message, count)
		for i := range msgs {
			msgs[i] = &mq.Message{Body: body}
		}
		return br.Publish(ctx, topic, msgs...)
	})
	if err != nil {
		b.Fatalf("Publish: %v", err)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "pub-ns/op")
	waitAll(b, all, &got)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

func benchRaw(b *testing.B, base string, body []byte, size int) {
	conn, err := amqp.Dial(base)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	subConn, err := amqp.Dial(base)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { _ = subConn.Close() })
	admin, err := conn.Channel()
	if err != nil {
		b.Fatalf("channel: %v", err)
	}
	topic := uniqueTopic(b)
	queue := topic + ".bench"
	if err := admin.ExchangeDeclare(topic, "fanout", true, false, false, false, nil); err != nil {
		b.Fatalf("declare exchange: %v", err)
	}
	if _, err := admin.QueueDeclare(queue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-expires": int64(10 * time.Minute / time.Millisecond)}); err != nil {
		b.Fatalf("declare queue: %v", err)
	}
	if err := admin.QueueBind(queue, "", topic, false, nil); err != nil {
		b.Fatalf("bind: %v", err)
	}
	pubs := make([]*amqp.Channel, benchPubChannels)
	for i := range pubs {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatalf("channel: %v", err)
		}
		if err := ch.Confirm(false); err != nil {
			b.Fatalf("confirm: %v", err)
		}
		pubs[i] = ch
	}
	sub, err := subConn.Channel()
	if err != nil {
		b.Fatalf("channel: %v", err)
	}
	if err := sub.Qos(benchPrefetch, 0, false); err != nil {
		b.Fatalf("qos: %v", err)
	}
	deliveries, err := sub.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		b.Fatalf("consume: %v", err)
	}
	var got atomic.Int64
	all := make(chan struct{})
	target := int64(b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			_ = d.Ack(false)
			if got.Add(1) == target {
				close(all)
			}
		}
	}()
	b.Cleanup(func() {
		_ = sub.Close()
		<-done
	})
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	var seq atomic.Uint32
	start, cpu := time.Now(), cpuTime()
	err = split(b.N, size, func(count int) error {
		ch := pubs[int(seq.Add(1))%len(pubs)]
		dcs := make([]*amqp.DeferredConfirmation, count)
		for i := range dcs {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, topic, "", true, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent,
				MessageId:    mq.NewID(),
				Body:         body,
			})
			if err != nil {
				return err
			}
			dcs[i] = dc
		}
		for _, dc := range dcs {
			ok, err := dc.WaitContext(ctx)
			if err == nil && !ok {
				err = fmt.Errorf("nack")
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("publish: %v", err)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "pub-ns/op")
	waitAll(b, all, &got)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// waitAll waits until every message was consumed, bounded in time.
func waitAll(b *testing.B, all <-chan struct{}, got *atomic.Int64) {
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		b.Fatalf("consumed %d of %d messages within 2 minutes", got.Load(), b.N)
	}
}
