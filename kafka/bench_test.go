package kafka_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka"
	"github.com/seedmq/mq/kafka/kafkatest"
)

const benchPublishers = 16 // goroutines publishing one message per call

// benchBodyBytes is the body size of the publish+consume benchmarks. The
// cross-library harness's hardest Kafka cell is 64 KiB bodies:
//
//	go test -run '^$' -bench PublishConsume -benchmem ./kafka/ -args -kafka.bench.body 65536
var benchBodyBytes = flag.Int("kafka.bench.body", 100, "body size in bytes of BenchmarkPublishConsume and BenchmarkPublishLone")

// benchRetain makes mq's benchmark handler keep the last n messages it
// was given, as raw's consumer keeps its commit batch (up to 100 fetched
// messages, bodies included). What a process keeps sets its GC pace: with
// 64 KiB bodies, raw's batch alone holds 6.4 MB, while mq holds nothing
// and collects at the 4 MB minimum heap goal, several times as often.
var benchRetain = flag.Int("kafka.bench.retain", 0, "BenchmarkPublishConsume: mq's handler keeps the last n messages, like raw's commit batch")

// BenchmarkPublishConsume measures publish+consume throughput through mq
// and through raw kafka-go tuned the same way, in one run on the same
// broker: 16 goroutines each publish one message per call (acks=all,
// murmur2 partitioner; raw's Writer with a 1ms batch timeout) while one consumer-group member
// handles them one at a time and commits in batches. One op is one
// message published and consumed. mq-conc16 is mq with
// mq.Concurrency(16), as the cross-library harness runs it at
// concurrency 16 (raw has one consumer goroutine either way).
//
//	go test -run '^$' -bench PublishConsume -benchmem -benchtime 20000x ./kafka/
func BenchmarkPublishConsume(b *testing.B) {
	b.Run("mq", func(b *testing.B) { benchMQ(b, 1) })
	b.Run("mq-conc16", func(b *testing.B) { benchMQ(b, 16) })
	b.Run("raw", benchRaw)
}

func benchMQ(b *testing.B, concurrency int) {
	ctx := ctxFor(b, 5*time.Minute)
	br := open(b, "")
	topic, group := uniqueName(b, "bench"), uniqueName(b, "g")
	if err := mq.Provision(ctx, br, topic, group); err != nil {
		b.Fatal(err)
	}
	deleteTopicAfter(b, topic)
	var handled atomic.Int64
	target := atomic.Int64{}
	done := make(chan struct{}, 1)
	var keptMu sync.Mutex
	kept := make([]*mq.Message, *benchRetain)
	subscribe(b, br, topic, func(ctx context.Context, m *mq.Message) error {
		n := handled.Add(1)
		if len(kept) > 0 {
			keptMu.Lock()
			kept[n%int64(len(kept))] = m
			keptMu.Unlock()
		}
		if n == target.Load() {
			done <- struct{}{}
		}
		return nil
	}, mq.Group(group), mq.Concurrency(concurrency))
	body := make([]byte, *benchBodyBytes)
	publish := func(n int) {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range benchPublishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if err := br.Publish(ctx, topic, mq.NewMessage(body)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	// Warm up: the group has joined once one message went through.
	target.Store(1)
	publish(1)
	awaitBench(b, ctx, done)

	handled.Store(0)
	target.Store(int64(b.N))
	cpu, gcs := processCPU(), gcCycles()
	b.ResetTimer()
	publish(b.N)
	awaitBench(b, ctx, done)
	b.StopTimer()
	// mq's producer does not go through a kafka-go Writer: no writer
	// statistics to report.
	reportBench(b, processCPU()-cpu, gcCycles()-gcs, nil)
}

func benchRaw(b *testing.B) {
	ctx := ctxFor(b, 5*time.Minute)
	addrs := kafkatest.Addrs(b)
	topic, group := uniqueName(b, "bench"), uniqueName(b, "g")
	// Create the topic like the driver does (3 partitions).
	br := open(b, "")
	if err := mq.Provision(ctx, br, topic); err != nil {
		b.Fatal(err)
	}
	deleteTopicAfter(b, topic)
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(addrs...),
		Balancer:     &kafkago.Murmur2Balancer{},
		BatchSize:    kafka.DefaultBatchSize,
		BatchTimeout: kafka.DefaultBatchTimeout,
		RequiredAcks: kafkago.RequireAll,
		// The topic exists; this makes the writer's transport fetch its
		// metadata instead of failing on a stale cache.
		AllowAutoTopicCreation: true,
	}
	b.Cleanup(func() { w.Close() })
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           addrs,
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          4 << 20,
		MaxWait:           500 * time.Millisecond,
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: kafka.DefaultHeartbeatInterval,
		SessionTimeout:    kafka.DefaultSessionTimeout,
		ReadLagInterval:   -1,
	})
	var handled atomic.Int64
	target := atomic.Int64{}
	done := make(chan struct{}, 1)
	cctx, cancel := context.WithCancel(ctx)
	var consumer sync.WaitGroup
	consumer.Add(1)
	go func() {
		defer consumer.Done()
		const commitEvery = 100
		batch := make([]kafkago.Message, 0, commitEvery)
		last := time.Now()
		for {
			m, err := r.FetchMessage(cctx)
			if err != nil {
				return
			}
			batch = append(batch, m)
			n := handled.Add(1)
			if len(batch) == commitEvery || n == target.Load() || time.Since(last) > kafka.DefaultCommitInterval {
				if err := r.CommitMessages(cctx, batch...); err != nil && cctx.Err() == nil {
					b.Error(err)
				}
				batch, last = batch[:0], time.Now()
			}
			if n == target.Load() {
				done <- struct{}{}
			}
		}
	}()
	b.Cleanup(func() { cancel(); consumer.Wait(); r.Close() })

	body := make([]byte, *benchBodyBytes)
	publish := func(n int) {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range benchPublishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if err := w.WriteMessages(ctx, kafkago.Message{Topic: topic, Value: body}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	target.Store(1)
	publish(1)
	awaitBench(b, ctx, done)

	handled.Store(0)
	target.Store(int64(b.N))
	w.Stats() // resets the counters
	cpu, gcs := processCPU(), gcCycles()
	b.ResetTimer()
	publish(b.N)
	awaitBench(b, ctx, done)
	b.StopTimer()
	ws := w.Stats()
	reportBench(b, processCPU()-cpu, gcCycles()-gcs, &ws)
}

// deleteTopicAfter deletes topic when the benchmark ends, so that runs
// with large bodies do not fill the broker's disk. Cleanups run last
// first: call it before starting the clients that use topic.
func deleteTopicAfter(b *testing.B, topic string) {
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := &kafkago.Client{Addr: kafkago.TCP(kafkatest.Addrs(b)...)}
		if _, err := c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
			b.Logf("delete topic %s: %v", topic, err)
		}
	})
}

// reportBench reports throughput, the client CPU (user and system, of
// the whole test process, the broker being a separate process) per
// message, the GC cycles per 1000 messages, and, given a Writer's
// statistics, the produce requests per message (each costs a request and
// its response to encode and decode, whatever its size).
func reportBench(b *testing.B, cpu time.Duration, gcs uint64, ws *kafkago.WriterStats) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
	b.ReportMetric(float64(gcs)*1000/float64(b.N), "gcs/kmsg")
	if ws != nil {
		b.ReportMetric(float64(ws.Writes)/float64(b.N), "produces/msg")
	}
}

// gcCycles returns the number of GC cycles the process has completed.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func awaitBench(b *testing.B, ctx context.Context, done <-chan struct{}) {
	b.Helper()
	if b.Failed() {
		b.FailNow()
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatal("timed out waiting for the consumer")
	}
}

// BenchmarkPublishLone measures one synchronous Publish of one message at
// a time: the latency a lone caller sees (about one broker round trip: the
// producer sends a lone message at once).
func BenchmarkPublishLone(b *testing.B) {
	ctx := ctxFor(b, 5*time.Minute)
	br := open(b, "")
	topic := uniqueName(b, "lone")
	if err := mq.Provision(ctx, br, topic); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, *benchBodyBytes)
	b.ResetTimer()
	for range b.N {
		if err := br.Publish(ctx, topic, mq.NewMessage(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsume measures the consumer alone: b.N messages are
// published first, then one consumer-group member handles them from the
// earliest offset, and the time, CPU and allocations run from its start
// until the last is handled. mq-conc16 is mq with mq.Concurrency(16), as
// the cross-library harness runs it; raw is kafka-go's Reader with
// FetchMessage and CommitMessages every 100 messages. The consumer's
// goroutines carry the pprof label phase=consume, so that a CPU profile
// of the run can be narrowed to them:
//
//	go test -run '^$' -bench '^BenchmarkConsume$' -benchtime 100000x -cpuprofile cpu.out ./kafka/ -args -kafka.bench.body 1024
//	go tool pprof -tagfocus phase=consume cpu.out
func BenchmarkConsume(b *testing.B) {
	b.Run("mq-conc16", func(b *testing.B) { benchConsume(b, consumeMQ) })
	b.Run("raw", func(b *testing.B) { benchConsume(b, consumeRaw) })
}

// consumeFunc consumes topic as group from the earliest offset, calling
// handled once per message, until ctx ends.
type consumeFunc func(b *testing.B, ctx context.Context, topic, group string, handled func())

// benchConsumeProfile names a CPU profile of BenchmarkConsume's consuming
// phase alone (publishing left out), written for the last sub-benchmark
// run.
var benchConsumeProfile = flag.String("kafka.bench.consumeprofile", "", "BenchmarkConsume: write a CPU profile of the consuming phase to this file")

func benchConsume(b *testing.B, consume consumeFunc) {
	ctx := ctxFor(b, 5*time.Minute)
	br := open(b, "")
	topic, group := uniqueName(b, "bench"), uniqueName(b, "g")
	if err := mq.Provision(ctx, br, topic); err != nil {
		b.Fatal(err)
	}
	deleteTopicAfter(b, topic)
	body := make([]byte, *benchBodyBytes)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range benchPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := br.Publish(ctx, topic, mq.NewMessage(body)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}

	var count atomic.Int64
	done := make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	var consumer sync.WaitGroup
	consumer.Add(1)
	if *benchConsumeProfile != "" {
		f, err := os.Create(*benchConsumeProfile)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	cpu, gcs, allocs := processCPU(), gcCycles(), heapObjects()
	b.ResetTimer()
	go pprof.Do(cctx, pprof.Labels("phase", "consume"), func(ctx context.Context) {
		defer consumer.Done()
		consume(b, ctx, topic, group, func() {
			if count.Add(1) == int64(b.N) {
				close(done)
			}
		})
	})
	b.Cleanup(func() { cancel(); consumer.Wait() })
	awaitBench(b, ctx, done)
	b.StopTimer()
	b.ReportMetric(float64(heapObjects()-allocs)/float64(b.N), "allocs/msg")
	reportBench(b, processCPU()-cpu, gcCycles()-gcs, nil)
}

func consumeMQ(b *testing.B, ctx context.Context, topic, group string, handled func()) {
	br := open(b, "")
	err := br.Subscribe(ctx, topic, func(context.Context, *mq.Message) error {
		handled()
		return nil
	}, mq.Group(group), mq.Concurrency(16), mq.StartAt(mq.Earliest))
	if err != nil && ctx.Err() == nil && !errors.Is(err, mq.ErrClosed) {
		b.Error(err)
	}
}

func consumeRaw(b *testing.B, ctx context.Context, topic, group string, handled func()) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           kafkatest.Addrs(b),
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          4 << 20,
		MaxWait:           500 * time.Millisecond,
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: kafka.DefaultHeartbeatInterval,
		SessionTimeout:    kafka.DefaultSessionTimeout,
		ReadLagInterval:   -1,
	})
	defer r.Close()
	const commitEvery = 100
	batch := make([]kafkago.Message, 0, commitEvery)
	last := time.Now()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return
		}
		batch = append(batch, m)
		handled()
		if len(batch) == commitEvery || time.Since(last) > kafka.DefaultCommitInterval {
			if err := r.CommitMessages(ctx, batch...); err != nil && ctx.Err() == nil {
				b.Error(err)
			}
			batch, last = batch[:0], time.Now()
		}
	}
}

// heapObjects returns the number of heap objects allocated so far.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
