package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka"
)

func TestOpenUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
	}{
		{"refused", "kafka://127.0.0.1:1"},
		{"no such host", "kafka://no-such-host.invalid:9092"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			b, err := mq.Open(ctx, tc.url)
			if err == nil {
				_ = b.Close(ctx)
				t.Fatalf("Open(%q): got nil error, want one", tc.url)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("Open took %v, want it to end within the ctx deadline (3s)", d)
			}
			if !mq.IsRetryable(err) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want a retryable error or the deadline", err)
			}
			t.Logf("error: %v", err)
		})
	}
	t.Run("silent listener", func(t *testing.T) {
		// A listener that accepts connections and never answers: Open must
		// give up at its ctx deadline with the deadline's error.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { ln.Close(); wg.Wait() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = mq.Open(ctx, "kafka://"+ln.Addr().String())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want an error wrapping context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Open took %v, want about the 500ms deadline", d)
		}
		t.Logf("error: %v", err)
	})
}

// TestLonePublishLatency guards against the kafka-go Writer's default 1s
// BatchTimeout: a single synchronous Publish must return after about a
// broker round trip. The bound is generous for a loaded machine; the
// numbers are logged (see also BenchmarkPublishLone).
func TestLonePublishLatency(t *testing.T) {
	b := open(t, "")
	topic := uniqueName(t, "lat")
	ctx := ctxFor(t, 60*time.Second)
	if err := mq.Provision(ctx, b, topic); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	const n = 30
	lat := make([]time.Duration, n)
	for i := range lat {
		start := time.Now()
		if err := b.Publish(ctx, topic, mq.NewMessage([]byte("x"))); err != nil {
			t.Fatalf("Publish: got %v, want nil", err)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	median := lat[n/2]
	t.Logf("lone Publish latency over %d calls: min %v, median %v, max %v", n, lat[0], median, lat[n-1])
	if median >= 500*time.Millisecond {
		t.Errorf("median lone Publish latency: got %v, want well under kafka-go's 1s batch timeout", median)
	}
}

// TestKeyPartitioning checks that keyed messages land on the partition
// Java's default partitioner would pick, and that Message.As exposes the
// raw kafka.Message.
func TestKeyPartitioning(t *testing.T) {
	b := open(t, "partitions=7")
	topic, group := uniqueName(t, "keys"), uniqueName(t, "g")
	ctx := ctxFor(t, 60*time.Second)
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	// Partitions of these keys among 7, from Java's
	// Utils.toPositive(Utils.murmur2(key)) % 7 (hashes from Kafka's UtilsTest).
	javaHash := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"abc":                        479470107,
	}
	want := map[string]int{}
	for k, h := range javaHash {
		want[k] = int(h&0x7fffffff) % 7
	}
	var msgs []*mq.Message
	for k := range want {
		m := mq.NewMessage([]byte(k))
		m.Key = k
		msgs = append(msgs, m)
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("Publish: got %v, want nil", err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	all := make(chan struct{})
	subscribe(t, b, topic, func(ctx context.Context, m *mq.Message) error {
		var km kafkago.Message
		if !m.As(&km) {
			t.Errorf("Message.As(*kafka.Message): got false, want true")
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		got[m.Key] = km.Partition
		if len(got) == len(want) {
			close(all)
		}
		return nil
	}, mq.Group(group))
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("timed out; got %d of %d messages", len(got), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	for k, p := range want {
		if got[k] != p {
			t.Errorf("partition of key %q: got %d, want %d (Java's default partitioner)", k, got[k], p)
		}
	}
}

// TestRebalanceUnderLoad publishes a steady stream of keyed messages while
// consumers of one group join and leave: B and C join mid-stream, A
// closes, B is canceled, and C drains the rest. Every message must be
// handled, none twice (offsets are committed when a partition is revoked,
// before it moves), and each key's messages in publish order.
func TestRebalanceUnderLoad(t *testing.T) {
	const query = "partitions=6"
	topic, group := uniqueName(t, "rebal"), uniqueName(t, "g")
	ctx := ctxFor(t, 3*time.Minute)
	pub := open(t, query)
	if err := mq.Provision(ctx, pub, topic, group); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}

	const keys, perKey = 40, 60 // 2400 messages
	var mu sync.Mutex
	handled := map[string]int{}    // body → times handled
	lastSeq := map[string]int{}    // key → last sequence number handled
	byConsumer := map[string]int{} // consumer → messages handled
	var disorder []string
	allDone := make(chan struct{})
	handler := func(name string) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			seq, err := strconv.Atoi(m.Header["seq"])
			if err != nil {
				t.Errorf("message %s: bad seq header %q", m.ID, m.Header["seq"])
				return nil
			}
			time.Sleep(time.Millisecond) // keep some handlers in flight during rebalances
			mu.Lock()
			defer mu.Unlock()
			handled[string(m.Body)]++
			byConsumer[name]++
			if last, ok := lastSeq[m.Key]; ok && seq <= last && len(disorder) < 10 {
				disorder = append(disorder, fmt.Sprintf("key %s: seq %d after %d (consumer %s, attempt %d)", m.Key, seq, last, name, m.Attempt))
			}
			lastSeq[m.Key] = seq
			if len(handled) == keys*perKey {
				select {
				case <-allDone:
				default:
					close(allDone)
				}
			}
			return nil
		}
	}

	pubDone := make(chan error, 1)
	go func() {
		for seq := range perKey {
			batch := make([]*mq.Message, 0, keys)
			for k := range keys {
				m := mq.NewMessage([]byte(fmt.Sprintf("k%d-%d", k, seq)))
				m.Key = "k" + strconv.Itoa(k)
				m.Header["seq"] = strconv.Itoa(seq)
				batch = append(batch, m)
			}
			if err := pub.Publish(ctx, topic, batch...); err != nil {
				pubDone <- err
				return
			}
			time.Sleep(100 * time.Millisecond) // about 6s of publishing
		}
		pubDone <- nil
	}()

	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	waitFor := func(what string, n int) {
		t.Helper()
		for i := 0; count() < n; i++ {
			if i > 6000 || ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s: %d of %d handled", what, count(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	bA := open(t, query)
	subscribe(t, bA, topic, handler("A"), mq.Group(group), mq.Concurrency(4))
	waitFor("A to start", 200)
	bB := open(t, query)
	stopB := subscribe(t, bB, topic, handler("B"), mq.Group(group), mq.Concurrency(4))
	waitFor("progress after B joined", 700)
	bC := open(t, query)
	subscribe(t, bC, topic, handler("C"), mq.Group(group), mq.Concurrency(4))
	waitFor("progress after C joined", 1200)
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := bA.Close(closeCtx); err != nil {
		t.Errorf("Close of A: got %v, want nil", err)
	}
	cancel()
	waitFor("progress after A left", 1700)
	if err := stopB(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe of B after cancel: got %v, want context.Canceled", err)
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("Publish: got %v, want nil", err)
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		t.Fatalf("timed out: %d of %d messages handled", count(), keys*perKey)
	}
	// Watch a little longer for redeliveries of handled messages.
	time.Sleep(2 * time.Second)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("handled per consumer: %v", byConsumer)
	var dups []string
	for body, n := range handled {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", body, n))
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Errorf("%d messages handled more than once (a commit was lost or late across a rebalance): %v", len(dups), dups[:min(len(dups), 10)])
	}
	if len(disorder) > 0 {
		t.Errorf("per-key order broken: %v", disorder)
	}
	for _, c := range []string{"A", "B", "C"} {
		if byConsumer[c] == 0 {
			t.Errorf("consumer %s handled nothing; the rebalances did not spread the work", c)
		}
	}
}

// TestNewOptions checks the constructor that takes kafka-go settings.
func TestNewOptions(t *testing.T) {
	cfg := newOptions(t)
	cfg.Compression = kafkago.Snappy
	cfg.Group = uniqueName(t, "g")
	ctx := ctxFor(t, 30*time.Second)
	b, err := kafka.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	defer b.Close(ctx)
	var w *kafkago.Writer
	if !b.As(&w) || w.Compression != kafkago.Snappy || w.RequiredAcks != kafkago.RequireAll {
		t.Errorf("As(*kafka.Writer): got %v, want the writer with snappy compression and acks=all", w)
	}
	var c *kafkago.Client
	if !b.As(&c) || c == nil {
		t.Errorf("As(*kafka.Client): got false, want true")
	}
	var other *int
	if b.As(&other) {
		t.Errorf("As(*int): got true, want false")
	}
	if err := b.Ping(ctx); err != nil {
		t.Errorf("Ping: got %v, want nil", err)
	}
	// A compressed publish round-trips.
	topic := uniqueName(t, "snappy")
	if err := b.Provision(ctx, topic, cfg.Group); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	if err := b.Publish(ctx, topic, mq.NewMessage([]byte("compressed"))); err != nil {
		t.Fatalf("Publish with snappy: got %v, want nil", err)
	}
	got := make(chan string, 1)
	subscribe(t, b, topic, func(ctx context.Context, m *mq.Message) error {
		select {
		case got <- string(m.Body):
		default:
		}
		return nil
	})
	select {
	case body := <-got:
		if body != "compressed" {
			t.Errorf("body: got %q, want %q", body, "compressed")
		}
	case <-ctx.Done():
		t.Fatal("timed out waiting for the compressed message")
	}
	if _, err := kafka.New(ctx, kafka.Options{}); !errors.Is(err, mq.ErrInvalidOption) {
		t.Errorf("New without brokers: got %v, want ErrInvalidOption", err)
	}
	if _, err := kafka.New(ctx, kafka.Options{Brokers: cfg.Brokers, BatchSize: -1}); !errors.Is(err, mq.ErrInvalidOption) {
		t.Errorf("New with BatchSize -1: got %v, want ErrInvalidOption", err)
	}
}
