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
				br := memory.New(memory.Options{})
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
