package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	createtopicsAPI "github.com/segmentio/kafka-go/protocol/createtopics"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// fakeLeader stands in for kafka-go's Transport in producer tests: it
// reads each produce request's records and answers with the error code
// answer returns (0 for success). Requests for other APIs (the metadata
// refresh) are counted and answered empty.
type fakeLeader struct {
	mu        sync.Mutex
	answer    func(partition int32, attempt int) int16 // nil: success
	stall     bool                                     // block until the request's ctx ends
	attempts  map[int32]int
	got       map[int32][][]byte // record values stored per partition
	inFlight  map[int32]int
	maxFlight int // most requests in flight for one partition at once
	refreshes atomic.Int64
	block     chan struct{} // when not nil, each produce request waits for a value
}

func newFakeLeader() *fakeLeader {
	return &fakeLeader{attempts: map[int32]int{}, got: map[int32][][]byte{}, inFlight: map[int32]int{}}
}

func (f *fakeLeader) RoundTrip(ctx context.Context, _ net.Addr, req kafka.Request) (kafka.Response, error) {
	switch r := req.(type) {
	case *createtopicsAPI.Request:
		f.refreshes.Add(1)
		return &createtopicsAPI.Response{}, nil
	case *produceAPI.Request:
		t := r.Topics[0]
		p := t.Partitions[0]
		var values [][]byte
		for {
			rec, err := p.RecordSet.Records.ReadRecord()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			v, _ := protocol.ReadAll(rec.Value)
			values = append(values, v)
		}
		f.mu.Lock()
		f.inFlight[p.Partition]++
		f.maxFlight = max(f.maxFlight, f.inFlight[p.Partition])
		attempt := f.attempts[p.Partition]
		f.attempts[p.Partition]++
		stall, block := f.stall, f.block
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inFlight[p.Partition]--
			f.mu.Unlock()
		}()
		if stall {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if block != nil {
			select {
			case <-block:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var code int16
		if f.answer != nil {
			code = f.answer(p.Partition, attempt)
		}
		if code == 0 {
			f.mu.Lock()
			f.got[p.Partition] = append(f.got[p.Partition], values...)
			f.mu.Unlock()
		}
		return &produceAPI.Response{Topics: []produceAPI.ResponseTopic{{
			Topic:      t.Topic,
			Partitions: []produceAPI.ResponsePartition{{Partition: p.Partition, ErrorCode: code}},
		}}}, nil
	}
	return nil, errors.New("fakeLeader: unexpected request")
}

// fakeBroker returns a Broker whose producer talks to f, with topic
// "t" of the given partition count known to exist.
func fakeBroker(t testing.TB, f kafka.RoundTripper, partitions int, opts Options) *Broker {
	t.Helper()
	opts.Brokers = []string{"127.0.0.1:1"}
	cfg := opts.withDefaults()
	cfg.Logger = slog.New(slog.DiscardHandler)
	b := &Broker{cfg: cfg, log: cfg.Logger, maxRecord: defaultMessageMaxBytes}
	b.transport = &kafka.Transport{}
	b.client = &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: b.transport}
	b.writer = &kafka.Writer{Addr: b.client.Addr, Transport: b.transport}
	b.caps = mq.Capabilities{Driver: Scheme, MaxMessageBytes: b.maxRecord - fixedOverhead - headerOverhead*reservedHeaders}
	b.prod = newProducer(b)
	b.prod.rt = f
	b.topics.Store("t", struct{}{})
	tq := &topicQueues{}
	tq.read.Store(time.Now().Add(time.Hour).UnixNano()) // never looked up again
	for i := range partitions {
		tq.ids = append(tq.ids, i)
		tq.parts = append(tq.parts, &partQueue{topic: "t", id: int32(i)})
	}
	b.prod.topics.Store("t", tq)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func TestPublishWhileInFlightJoinsTheNextRequest(t *testing.T) {
	f := newFakeLeader()
	f.block = make(chan struct{})
	b := fakeBroker(t, f, 1, Options{})
	ctx := context.Background()

	first := make(chan error, 1)
	go func() { first <- b.Publish(ctx, "t", mq.NewMessage([]byte("first"))) }()
	waitFor(t, "the first request", func() bool { return b.prod.requests.Load() == 0 && f.inFlightOf(0) == 1 })

	// These arrive while the first request is in flight: they must wait
	// for it, then go out together in one request.
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- b.Publish(ctx, "t", mq.NewMessage([]byte{byte('a' + i)})) })
	}
	waitFor(t, "the queued publishes", func() bool { return b.prod.queued("t", 0) == n })
	close(f.block)
	if err := <-first; err != nil {
		t.Fatalf("first Publish: got %v, want nil", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued Publish: got %v, want nil", err)
		}
	}
	if got := b.prod.requests.Load(); got != 2 {
		t.Errorf("produce requests: got %d, want 2 (the lone first, then the %d queued together)", got, n)
	}
	if f.maxFlight != 1 {
		t.Errorf("requests in flight for the partition: got up to %d, want 1", f.maxFlight)
	}
}

func TestLonePublishIsSentAtOnce(t *testing.T) {
	f := newFakeLeader()
	b := fakeBroker(t, f, 3, Options{})
	start := time.Now()
	for range 50 {
		if err := b.Publish(context.Background(), "t", mq.NewMessage([]byte("x"))); err != nil {
			t.Fatalf("Publish: got %v, want nil", err)
		}
	}
	// With no broker latency, 50 sequential publishes take well under a
	// millisecond each unless something waits for a timer.
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("50 lone publishes took %v; something lingers", d)
	}
	if got := b.prod.requests.Load(); got != 50 {
		t.Errorf("produce requests: got %d, want 50 (one per lone Publish)", got)
	}
}

func TestTakeBoundsCountAndBytes(t *testing.T) {
	p := &producer{maxCount: 3, maxBytes: 1000}
	rec := func(size int) *record { return &record{size: batchOverhead + size} }
	q := &partQueue{queue: []*record{rec(400), rec(400), rec(400), rec(10)}}
	if got := len(p.take(q)); got != 2 {
		t.Errorf("first batch: got %d records, want 2 (a third would pass 1000 bytes)", got)
	}
	if got := len(p.take(q)); got != 2 {
		t.Errorf("second batch: got %d records, want 2", got)
	}
	q.queue = []*record{rec(5000)}
	if got := len(p.take(q)); got != 1 {
		t.Errorf("an oversized record: got %d, want 1 (a batch has at least one)", got)
	}
	q.queue = []*record{rec(1), rec(1), rec(1), rec(1), rec(1)}
	if got := len(p.take(q)); got != 3 {
		t.Errorf("count bound: got %d records, want 3", got)
	}
	if len(q.queue) != 2 {
		t.Errorf("left in the queue: got %d, want 2", len(q.queue))
	}
}

func TestKeylessPrefersAnIdlePartition(t *testing.T) {
	tq := &topicQueues{ids: []int{0, 1, 2}}
	for i := range 3 {
		tq.parts = append(tq.parts, &partQueue{id: int32(i)})
	}
	tq.parts[0].since.Store(100)
	tq.parts[2].since.Store(50)
	for range 10 {
		if q := tq.keyless(); q.id != 1 {
			t.Fatalf("with partition 1 idle: got partition %d", q.id)
		}
	}
	tq.parts[1].since.Store(200)
	if q := tq.keyless(); q.id != 2 {
		t.Errorf("all busy: got partition %d, want 2 (in flight longest)", q.id)
	}
	seen := map[int32]bool{}
	for _, p := range tq.parts {
		p.since.Store(0)
	}
	for range 10 {
		seen[tq.keyless().id] = true
	}
	if len(seen) != 3 {
		t.Errorf("all idle: lone publishes went to partitions %v, want all three", seen)
	}
}

func TestRetryAfterNotLeaderRefreshesMetadata(t *testing.T) {
	f := newFakeLeader()
	f.answer = func(_ int32, attempt int) int16 {
		if attempt < 2 {
			return int16(kafka.NotLeaderForPartition)
		}
		return 0
	}
	b := fakeBroker(t, f, 1, Options{})
	if err := b.Publish(context.Background(), "t", mq.NewMessage([]byte("x"))); err != nil {
		t.Fatalf("Publish: got %v, want nil after the retries", err)
	}
	if got := f.refreshes.Load(); got < 1 {
		t.Errorf("metadata refreshes: got %d, want at least 1", got)
	}
	if got := len(f.got[0]); got != 1 {
		t.Errorf("stored: got %d records, want 1", got)
	}
}

func TestPartialFailureNamesTheMessages(t *testing.T) {
	f := newFakeLeader()
	f.answer = func(p int32, _ int) int16 {
		if p == 1 {
			return int16(kafka.InvalidRecord) // not retriable
		}
		return 0
	}
	b := fakeBroker(t, f, 2, Options{})
	// Keys whose Java partitions among 2 are 0 and 1.
	k0, k1 := keyFor(t, b, 0), keyFor(t, b, 1)
	msgs := []*mq.Message{
		{ID: "a", Key: k0, Body: []byte("a")},
		{ID: "b", Key: k1, Body: []byte("b")},
		{ID: "c", Key: k0, Body: []byte("c")},
		{ID: "d", Key: k1, Body: []byte("d")},
	}
	err := b.Publish(context.Background(), "t", msgs...)
	var pe *mq.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("Publish: got %v, want a *mq.PublishError", err)
	}
	if pe.Total != 4 || len(pe.Failures) != 2 || pe.Failures[0].ID != "b" || pe.Failures[1].ID != "d" ||
		pe.Failures[0].Index != 1 || pe.Failures[1].Index != 3 {
		t.Errorf("failures: got %+v of %d, want b (1) and d (3) of 4", pe.Failures, pe.Total)
	}
	if mq.IsRetryable(err) {
		t.Errorf("IsRetryable(%v): got true, want false", err)
	}
}

func TestPublishReturnsWithinCtxBehindAStalledLeader(t *testing.T) {
	f := newFakeLeader()
	f.stall = true
	b := fakeBroker(t, f, 1, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Publish(ctx, "t", mq.NewMessage([]byte("x")))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish: got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish returned after %v, want about 200ms", d)
	}

	// A second publish queues behind the stalled request; Close, bounded
	// by its ctx, gives up on both and returns.
	errs := make(chan error, 1)
	go func() { errs <- b.Publish(context.Background(), "t", mq.NewMessage([]byte("y"))) }()
	waitFor(t, "the queued publish", func() bool { return b.prod.queued("t", 0) == 1 })
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	start = time.Now()
	if err := b.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond+3*time.Second {
		t.Errorf("Close returned after %v, want about 200ms plus the grace", d)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, mq.ErrClosed) {
			t.Errorf("Publish queued behind the stall: got %v, want mq.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish queued behind the stall did not return after Close")
	}
}

func TestCloseFlushesPendingPublishes(t *testing.T) {
	f := newFakeLeader()
	f.block = make(chan struct{})
	b := fakeBroker(t, f, 1, Options{})
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- b.Publish(context.Background(), "t", mq.NewMessage([]byte{byte(i)})) }()
	}
	waitFor(t, "the publishes", func() bool { return b.prod.queued("t", 0) == n-1 })
	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // Close has begun and waits
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the pending publishes were sent", err)
	default:
	}
	close(f.block)
	if err := <-closed; err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Publish: got %v, want nil", err)
		}
	}
	if got := len(f.got[0]); got != n {
		t.Errorf("stored: got %d, want %d", got, n)
	}
}

func TestRecordReaderEncodes(t *testing.T) {
	msgs := []*mq.Message{
		{ID: "1", Key: "k", Body: []byte("body"), Header: map[string]string{"h": "v", "empty": ""}},
		{ID: "2", Body: nil},
	}
	call := newPublishCall(context.Background(), msgs)
	recs := []*record{&call.recs[0], &call.recs[1]}
	var rr recordReader
	var buf bytes.Buffer
	for attempt := range 2 { // a retry encodes the same records again
		buf.Reset()
		rr.reset(recs)
		rs := protocol.RecordSet{Version: 2, Records: &rr}
		if _, err := rs.WriteTo(&buf); err != nil {
			t.Fatalf("attempt %d: WriteTo: %v", attempt, err)
		}
		var back protocol.RecordSet
		if _, err := back.ReadFrom(&buf); err != nil {
			t.Fatalf("attempt %d: ReadFrom: %v", attempt, err)
		}
		r0, err := back.Records.ReadRecord()
		if err != nil {
			t.Fatal(err)
		}
		key, _ := protocol.ReadAll(r0.Key)
		val, _ := protocol.ReadAll(r0.Value)
		hdrs := map[string]string{}
		for _, h := range r0.Headers {
			if h.Value == nil {
				t.Errorf("header %q: got null, want an empty value", h.Key)
			}
			hdrs[h.Key] = string(h.Value)
		}
		if string(key) != "k" || string(val) != "body" || hdrs[headerID] != "1" || hdrs["h"] != "v" || len(hdrs) != 3 {
			t.Errorf("record 0: got key %q value %q headers %v", key, val, hdrs)
		}
		r1, err := back.Records.ReadRecord()
		if err != nil {
			t.Fatal(err)
		}
		if r1.Key != nil {
			t.Errorf("record 1 without a Key: got a key, want null")
		}
		if val, _ := protocol.ReadAll(r1.Value); val == nil || len(val) != 0 {
			t.Errorf("record 1 with a nil Body: got %v, want an empty value", val)
		}
	}
}

func TestRecordSizeBoundsAMaxMessage(t *testing.T) {
	const brokerMax = defaultMessageMaxBytes
	limit := brokerMax - fixedOverhead - headerOverhead*reservedHeaders
	m := &mq.Message{ID: mq.NewID(), Key: "k", Header: map[string]string{}}
	for i := range reservedHeaders {
		m.Header[string(rune('A'+i%26))+strings.Repeat("x", i/26)] = "v"
	}
	m.Body = make([]byte, limit-m.Size())
	call := newPublishCall(context.Background(), []*mq.Message{m})
	if got := call.recs[0].size; got > brokerMax {
		t.Errorf("record size of a message at MaxMessageBytes with %d headers: got %d, want at most %d", reservedHeaders, got, brokerMax)
	}
	var rr recordReader
	rr.reset([]*record{&call.recs[0]})
	var buf bytes.Buffer
	rs := protocol.RecordSet{Version: 2, Records: &rr}
	if _, err := rs.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > call.recs[0].size {
		t.Errorf("encoded batch: got %d bytes, more than the bound %d", buf.Len(), call.recs[0].size)
	}
}

// keyFor returns a key that Java's partitioner puts on partition p of
// topic "t".
func keyFor(t *testing.T, b *Broker, p int) string {
	v, _ := b.prod.topics.Load("t")
	tq := v.(*topicQueues)
	for i := range 1000 {
		k := "key-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if tq.keyed([]byte(k)).id == int32(p) {
			return k
		}
	}
	t.Fatalf("no key for partition %d", p)
	return ""
}

func (f *fakeLeader) inFlightOf(p int32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inFlight[p]
}

// queued returns how many records wait in the queue of topic's partition p.
func (p *producer) queued(topic string, part int) int {
	v, ok := p.topics.Load(topic)
	if !ok {
		return 0
	}
	q := v.(*topicQueues).parts[part]
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// waitFor polls cond until it holds, failing the test after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRefreshLearnsANewTopic pins the way the producer makes kafka-go's
// Transport refresh its metadata cache at once (an empty CreateTopics
// request): a topic created by another client is unknown to the cache
// until the next periodic refresh, and known right after refresh.
func TestRefreshLearnsANewTopic(t *testing.T) {
	addrs := kafkatest.Addrs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := New(ctx, Options{Brokers: addrs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	defer b.Close(ctx)
	other := &kafka.Client{Addr: kafka.TCP(addrs...), Transport: &kafka.Transport{}}
	defer other.Transport.(*kafka.Transport).CloseIdleConnections()
	cached := func(topic string) bool {
		md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		return err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil
	}
	for try := range 5 {
		topic := fmt.Sprintf("refresh-%d-%d", time.Now().UnixNano(), try)
		res, err := other.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
		if err != nil || res.Errors[topic] != nil {
			t.Fatalf("CreateTopics: got %v / %v, want nil", err, res.Errors[topic])
		}
		defer other.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
		if cached(topic) {
			continue // the periodic refresh came first; try another topic
		}
		b.prod.refresh(time.Now())
		if !cached(topic) {
			t.Fatalf("after refresh: topic %q is not in the transport's metadata", topic)
		}
		return
	}
	t.Fatal("every new topic was in the cache before the refresh; cannot tell whether refresh works")
}

// TestAddedPartitionsAreUsed checks that Publish picks up partitions added
// to a topic, so that keys go where Java's partitioner puts them for the
// new count.
func TestAddedPartitionsAreUsed(t *testing.T) {
	addrs := kafkatest.Addrs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := New(ctx, Options{Brokers: addrs, Partitions: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	defer b.Close(ctx)
	topic := fmt.Sprintf("grow-%d", time.Now().UnixNano())
	defer b.client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err := b.Publish(ctx, topic, &mq.Message{Key: "k", Body: []byte("1")}); err != nil {
		t.Fatalf("Publish: got %v, want nil", err)
	}
	res, err := b.client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 3}}})
	if err != nil || res.Errors[topic] != nil {
		t.Fatalf("CreatePartitions: got %v / %v, want nil", err, res)
	}
	// The new partitions reach the metadata a moment later.
	waitFor(t, "the transport's metadata to list 3 partitions", func() bool {
		b.prod.refresh(time.Now())
		ids, err := b.partitionsOf(ctx, topic)
		return err == nil && len(ids) == 3
	})
	v, _ := b.prod.topics.Load(topic)
	v.(*topicQueues).read.Store(0) // as if partitionsMaxAge had passed
	msgs := make([]*mq.Message, 30)
	for i := range msgs {
		msgs[i] = &mq.Message{Key: fmt.Sprint("key-", i), Body: []byte("x")}
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("Publish after adding partitions: got %v, want nil", err)
	}
	v, _ = b.prod.topics.Load(topic)
	tq := v.(*topicQueues)
	if len(tq.ids) != 3 {
		t.Fatalf("partitions known to the producer: got %v, want [0 1 2]", tq.ids)
	}
	ends, err := b.listOffsets(ctx, topic, []int{0, 1, 2}, mq.Latest)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	if ends[1]+ends[2] == 0 {
		t.Errorf("no message went to the added partitions 1 and 2 (end offsets %v)", ends)
	}
}
