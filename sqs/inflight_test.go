package sqs_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
)

// slowClient returns a client for the test server whose calls of
// operation op take at least delay longer, and the largest number of
// them that were in flight at once.
func slowClient(t *testing.T, op string, delay time.Duration) (c *awssqs.Client, maxInFlight func() int) {
	t.Helper()
	var mu sync.Mutex
	var now, peak int
	c = clientWith(t, middleware.InitializeMiddlewareFunc("slow", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if middleware.GetOperationName(ctx) != op {
			return next.HandleInitialize(ctx, in)
		}
		mu.Lock()
		now++
		peak = max(peak, now)
		mu.Unlock()
		defer func() {
			mu.Lock()
			now--
			mu.Unlock()
		}()
		time.Sleep(delay) // a slow server: calls overlap only if the driver lets them
		return next.HandleInitialize(ctx, in)
	}))
	return c, func() int {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// TestFullBatchesPublishConcurrently: concurrent Publish calls of ten
// messages each are sent side by side, one SendMessageBatch each, not
// queued behind a busy send. Before, a full batch waited when the loops
// running could take it in their next round, although they were busy
// sending: four publishers of ten had only two calls in flight, which
// left the queue near empty for the receivers, so that their receives
// brought two messages each instead of nine (the SQS 64 KiB cells of the
// benchmarks).
func TestFullBatchesPublishConcurrently(t *testing.T) {
	const publishers = 4
	c, maxInFlight := slowClient(t, "SendMessageBatch", 300*time.Millisecond)
	b := newBroker(t, c, sqs.Options{})
	top := topic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Publish(ctx, top, mq.NewMessage([]byte("creates the queue"))); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			msgs := make([]*mq.Message, 10)
			for i := range msgs {
				msgs[i] = mq.NewMessage([]byte(strconv.Itoa(p*10 + i)))
			}
			<-start
			errs <- b.Publish(ctx, top, msgs...)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := maxInFlight(); got != publishers {
		t.Errorf("SendMessageBatch calls in flight at once: got %d, want %d (one per Publish of ten)", got, publishers)
	}
}

// TestFullBatchesDeleteConcurrently: the deletes of two receive batches
// of ten go out side by side, as two receivers each deleting what they
// received would. Before, the second batch waited for the first call.
func TestFullBatchesDeleteConcurrently(t *testing.T) {
	c, maxInFlight := slowClient(t, "DeleteMessageBatch", 300*time.Millisecond)
	top := topic(t)
	const n = 20
	fillQueue(t, c, top, n)
	b := newBroker(t, c, sqs.Options{Receivers: 2, WaitTime: time.Second})
	// Hold every handler until all twenty messages arrived, so that both
	// receive batches are acknowledged at once.
	arrived := make(chan string, n)
	all := make(chan struct{})
	subscribe(t, b, top, func(ctx context.Context, m *mq.Message) error {
		arrived <- string(m.Body)
		select {
		case <-all:
		case <-ctx.Done():
		}
		return nil
	}, mq.Concurrency(n))
	waitFor(t, arrived, n, 30*time.Second)
	close(all)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := maxInFlight(); got != 2 {
		t.Errorf("DeleteMessageBatch calls in flight at once: got %d, want 2 (one per receive batch of ten)", got)
	}
}
