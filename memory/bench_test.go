package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

// BenchmarkPublishHandleAck measures one message's whole trip through the
// memory broker: Publish, delivery to a handler, acknowledgement. Compare
// allocs/op across changes: it should stay a small constant.
func BenchmarkPublishHandleAck(b *testing.B) {
	for _, conc := range []int{1, 4} {
		for _, size := range []int{16, 1024} {
			b.Run(fmt.Sprintf("concurrency=%d/size=%d", conc, size), func(b *testing.B) {
				ctx, cancel := context.WithCancel(context.Background())
				br := newBroker(b, memory.Options{})
				defer br.Close(context.Background())
				if err := br.Provision(ctx, "bench", "g"); err != nil {
					b.Fatal(err)
				}
				var handled atomic.Int64
				done := make(chan struct{})
				target := int64(b.N)
				go func() {
					br.Subscribe(ctx, "bench", func(context.Context, *mq.Message) error {
						if handled.Add(1) == target {
							close(done)
						}
						return nil
					}, mq.Group("g"), mq.Concurrency(conc))
				}()
				body := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := br.Publish(ctx, "bench", &mq.Message{ID: "id", Body: body}); err != nil {
						b.Fatal(err)
					}
				}
				<-done
				b.StopTimer()
				cancel()
			})
		}
	}
}

// BenchmarkPublish measures Publish alone: a topic with no groups, whose
// log keeps one message, so nothing but Publish's own work is timed.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	br := newBroker(b, memory.Options{Retain: 1})
	defer br.Close(ctx)
	msg := &mq.Message{ID: "id", Body: make([]byte, 16)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := br.Publish(ctx, "bench", msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
