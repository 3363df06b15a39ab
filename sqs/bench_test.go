package sqs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/aws/smithy-go/middleware"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
	"github.com/seedmq/mq/sqs/sqstest"
)

// Benchmark shape, the same for mq and the raw client: publishers each
// send batches of ten messages (SendMessageBatch), receivers long-poll
// for up to ten messages, and each received message is deleted in
// batches (DeleteMessageBatch).
const (
	benchPublishers = 8
	benchReceivers  = 4
	benchHandlers   = benchReceivers // mq's Concurrency: raw handles in its receivers, one message at a time
	benchBodySize   = 256
)

// BenchmarkPublishConsume measures publish+consume throughput of one
// message (ns/op, msgs/s) and the client CPU it costs (cpu-ns/msg: user
// plus system time of this process, the broker runs elsewhere), through
// mq and through aws-sdk-go-v2 directly with the same batching and
// concurrency, on the same server. Compare the two sub-benchmarks' ratios.
func BenchmarkPublishConsume(b *testing.B) {
	b.Run("mq", func(b *testing.B) { benchMQ(b, benchBodySize) })
	b.Run("raw", func(b *testing.B) { benchRaw(b, benchBodySize) })
}

// BenchmarkLargeBodies is BenchmarkPublishConsume with 64 KiB bodies,
// where the client's per-byte costs and the number of messages each
// ReceiveMessage returns matter most. Its name keeps it out of
// -bench 'PublishConsume|Consume'. Keep -benchtime small (a few hundred
// messages, e.g. -benchtime 300x): ElasticMQ holds queued messages in its
// JVM heap, and 15000 of them (1 GiB) ran it out of memory.
func BenchmarkLargeBodies(b *testing.B) {
	b.Run("mq", func(b *testing.B) { benchMQ(b, 64<<10) })
	b.Run("raw", func(b *testing.B) { benchRaw(b, 64<<10) })
}

// callCounter counts SQS API calls by operation.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) add(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

// report adds a calls-per-message metric for each operation.
func (c *callCounter) report(b *testing.B) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for op, n := range c.calls {
		b.ReportMetric(float64(n)/float64(b.N), op+"/msg")
	}
}

func newRawClient(b *testing.B) (*awssqs.Client, *callCounter) {
	cfg := sqstest.Config(b)
	tr := awshttp.NewBuildableClient().GetTransport()
	tr.MaxIdleConnsPerHost = 128 // as the driver's Open does
	cfg.HTTPClient = &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	counter := &callCounter{calls: map[string]int{}}
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			counter.add(middleware.GetOperationName(ctx))
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
	return awssqs.NewFromConfig(cfg), counter
}

func benchQueue(b *testing.B, c *awssqs.Client) (name, url string) {
	name = fmt.Sprintf("bench-%08x", rand.Uint32())
	out, err := c.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	return name, aws.ToString(out.QueueUrl)
}

// cpuTime returns this process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, start time.Time, cpu0 time.Duration) {
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/msg")
}

// batches splits n messages into batches of ten, handed out to workers.
func batches(n int) chan int {
	ch := make(chan int, n/10+1)
	for left := n; left > 0; left -= 10 {
		ch <- min(10, left)
	}
	close(ch)
	return ch
}

func benchMQ(b *testing.B, size int) {
	client, counter := newRawClient(b)
	topic, _ := benchQueue(b, client)
	counter.calls = map[string]int{}
	br, err := sqs.New(context.Background(), sqs.Options{Client: client, Receivers: benchReceivers, WaitTime: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}

	var handled atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	subDone := make(chan error, 1)
	go func() {
		subDone <- br.Subscribe(ctx, topic, func(context.Context, *mq.Message) error {
			if handled.Add(1) == target {
				close(done)
			}
			return nil
		}, mq.Concurrency(benchHandlers))
	}()
	work := batches(b.N)
	var wg sync.WaitGroup
	for range benchPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				msgs := make([]*mq.Message, n)
				for i := range msgs {
					msgs[i] = &mq.Message{Body: body}
				}
				if err := br.Publish(ctx, topic, msgs...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("handled %d of %d messages within 5 minutes", handled.Load(), b.N)
	}
	report(b, start, cpu0)
	b.StopTimer()
	counter.report(b)
	cancel()
	<-subDone
}

func benchRaw(b *testing.B, size int) {
	client, counter := newRawClient(b)
	_, url := benchQueue(b, client)
	counter.calls = map[string]int{} // not the queue's creation
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	bodyStr := string(body)

	var handled atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	target := int64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var rwg sync.WaitGroup
	for range benchReceivers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			rawConsume(ctx, client, url, func(n int) {
				if handled.Add(int64(n)) >= target {
					once.Do(func() { close(done) })
				}
			})
		}()
	}
	work := batches(b.N)
	var wg sync.WaitGroup
	for range benchPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				entries := make([]types.SendMessageBatchRequestEntry, n)
				for i := range entries {
					// An ID attribute, as mq sends one, to compare like with like.
					entries[i] = types.SendMessageBatchRequestEntry{
						Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(bodyStr),
						MessageAttributes: map[string]types.MessageAttributeValue{
							"mq-id": {DataType: aws.String("String"), StringValue: aws.String(mq.NewID())},
						},
					}
				}
				out, err := client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
				if err != nil || len(out.Failed) > 0 {
					b.Error(err, out)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("handled %d of %d messages within 5 minutes", handled.Load(), b.N)
	}
	report(b, start, cpu0)
	b.StopTimer()
	counter.report(b)
	cancel()
	rwg.Wait()
}

// BenchmarkConsume measures the consuming side alone: the queue is filled
// before the timer starts (ten messages per SendMessageBatch), then
// receivers drain it. Both sides receive full batches here, unlike in
// BenchmarkPublishConsume, where a consumer that keeps up with the
// publishers receives what has arrived since its last call.
func BenchmarkConsume(b *testing.B) {
	b.Run("mq", func(b *testing.B) {
		client, counter := newRawClient(b)
		topic, url := benchQueue(b, client)
		fill(b, client, url)
		br, err := sqs.New(context.Background(), sqs.Options{Client: client, Receivers: benchReceivers, WaitTime: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close(context.Background())
		counter.calls = map[string]int{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var handled atomic.Int64
		done := make(chan struct{})
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu0 := time.Now(), cpuTime()
		subDone := make(chan error, 1)
		go func() {
			subDone <- br.Subscribe(ctx, topic, func(context.Context, *mq.Message) error {
				if handled.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			}, mq.Concurrency(benchHandlers))
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("handled %d of %d messages within 5 minutes", handled.Load(), b.N)
		}
		report(b, start, cpu0)
		b.StopTimer()
		cancel()
		<-subDone
		counter.report(b)
	})
	b.Run("raw", func(b *testing.B) {
		client, counter := newRawClient(b)
		_, url := benchQueue(b, client)
		fill(b, client, url)
		counter.calls = map[string]int{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var handled atomic.Int64
		done := make(chan struct{})
		var once sync.Once
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu0 := time.Now(), cpuTime()
		var wg sync.WaitGroup
		for range benchReceivers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rawConsume(ctx, client, url, func(n int) {
					if handled.Add(int64(n)) >= int64(b.N) {
						once.Do(func() { close(done) })
					}
				})
			}()
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("handled %d of %d messages within 5 minutes", handled.Load(), b.N)
		}
		report(b, start, cpu0)
		b.StopTimer()
		cancel()
		wg.Wait()
		counter.report(b)
	})
}

// fill sends b.N messages to url in batches of ten, as mq publishes them.
func fill(b *testing.B, client *awssqs.Client, url string) {
	body := strings.Repeat("x", benchBodySize)
	for left := b.N; left > 0; left -= 10 {
		n := min(10, left)
		entries := make([]types.SendMessageBatchRequestEntry, n)
		for i := range entries {
			entries[i] = types.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(body),
				MessageAttributes: map[string]types.MessageAttributeValue{
					"mq-id": {DataType: aws.String("String"), StringValue: aws.String(mq.NewID())},
				},
			}
		}
		out, err := client.SendMessageBatch(context.Background(), &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			b.Fatal(err, out)
		}
	}
}

// rawConsume is a receiver written against the SDK directly: receive up
// to ten, handle, delete the batch.
func rawConsume(ctx context.Context, client *awssqs.Client, url string, handled func(n int)) {
	for ctx.Err() == nil {
		out, err := client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil || len(out.Messages) == 0 {
			continue
		}
		entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		if _, err := client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
			continue
		}
		handled(len(out.Messages))
	}
}
