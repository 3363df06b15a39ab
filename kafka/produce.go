package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	createtopicsAPI "github.com/segmentio/kafka-go/protocol/createtopics"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Producer timing. A batch whose request fails with a retryable error is
// sent again after a backoff (retryFirstDelay doubling to retryMaxDelay)
// for up to publishRetryFor after its first attempt. Each request is
// bounded by requestTimeout on the client and asks the broker to answer
// within brokerAckTimeout (the produce request's timeout field: how long
// the leader waits for the in-sync replicas).
const (
	publishRetryFor  = 15 * time.Second
	retryFirstDelay  = 50 * time.Millisecond
	retryMaxDelay    = time.Second
	requestTimeout   = 15 * time.Second
	brokerAckTimeout = 10 * time.Second
	notFoundRetries  = 3 // a partition the metadata does not know: refresh and try this often
)

// producer sends published records to the partition leaders through
// kafka-go's Transport, one produce request in flight per partition.
// Records published while a partition's request is in flight wait in its
// queue and go out together in the next request as soon as it returns:
// group commit without a timer.
type producer struct {
	b        *Broker
	rt       kafka.RoundTripper // b.transport; tests put a fake here
	addr     net.Addr           // the bootstrap brokers, as the transport knows them
	acks     int16
	attrs    protocol.Attributes // compression
	maxCount int                 // records per request (Options.BatchSize)
	maxBytes int                 // record bytes per request (message.max.bytes less the batch header)

	topics sync.Map // topic name → *topicQueues

	mu      sync.Mutex // guards closed and calls to senders.Add
	closed  bool
	senders sync.WaitGroup

	refreshMu sync.Mutex
	refreshed atomic.Int64 // UnixNano when the last forced metadata refresh ended

	requests atomic.Int64 // produce requests sent, for tests
	records  atomic.Int64 // records in them
}

func newProducer(b *Broker) *producer {
	return &producer{
		b:        b,
		rt:       b.transport,
		addr:     b.client.Addr,
		acks:     int16(b.cfg.Acks.required()),
		attrs:    protocol.Attributes(b.cfg.Compression) & 0x7,
		maxCount: b.cfg.BatchSize,
		maxBytes: b.maxRecord - batchOverhead,
	}
}

// topicQueues holds the queues of one topic's partitions.
type topicQueues struct {
	ids   []int // partition IDs, sorted
	parts []*partQueue
	next  atomic.Uint32 // where the search for an idle partition starts
	read  atomic.Int64  // UnixNano when ids were read from the metadata
}

// partQueue is one partition's queue and the state of its request.
type partQueue struct {
	topic string
	id    int32
	since atomic.Int64 // UnixNano when its request in flight began; 0 when idle

	mu    sync.Mutex
	busy  bool      // a sender goroutine owns the partition
	queue []*record // waiting for the next request
	batch []*record // the first batch of a sender being started
	spare []*record // the last batch's slice, for reuse
	req   *produceReq
	start func() // runs a sender; made once, so that starting one allocates nothing
}

// produceReq is a produce request for one partition, reused from one
// request to the next while the transport gives it back.
type produceReq struct {
	msg     produceAPI.Request
	topics  [1]produceAPI.RequestTopic
	parts   [1]produceAPI.RequestPartition
	records recordReader
	ctx     requestCtx
}

// requestCtx bounds one produce request. Done and Err are those of the
// lifecycle's drain context (they end when Close's ctx does); Deadline is
// requestTimeout after the request began, which kafka-go's transport sets
// as the connection's read and write deadline, so a request to a stalled
// leader fails with a timeout. It spares every request the timer and the
// cancel registration of context.WithTimeout (5 % of the client's CPU for
// lone publishes); Done does not close at the deadline, which is why it
// is handed to the transport only.
type requestCtx struct {
	context.Context
	deadline time.Time
}

func (c *requestCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// partitionsMaxAge is how often Publish looks again at a topic's
// partition count (in the transport's cached metadata), so that added
// partitions are used as the Java client uses them, within its default
// metadata.max.age.ms (5 minutes).
const partitionsMaxAge = time.Minute

// queues returns topic's partition queues, reading its partitions from the
// transport's metadata the first time and every partitionsMaxAge.
func (p *producer) queues(ctx context.Context, topic string) (*topicQueues, error) {
	v, ok := p.topics.Load(topic)
	var old *topicQueues
	if ok {
		old = v.(*topicQueues)
		if time.Since(time.Unix(0, old.read.Load())) < partitionsMaxAge {
			return old, nil
		}
		old.read.Store(time.Now().UnixNano()) // one caller looks; the others go on
	}
	ids, err := p.b.partitionsOf(ctx, topic)
	if err != nil {
		if old != nil {
			return old, nil // keep what is known; the produce requests will tell
		}
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("kafka: %w: topic %q has no partitions", mq.ErrNotFound, topic)
	}
	if old != nil && slices.Equal(old.ids, ids) {
		return old, nil
	}
	tq := &topicQueues{ids: ids, parts: make([]*partQueue, len(ids))}
	tq.read.Store(time.Now().UnixNano())
	for i, id := range ids {
		// Keep the queues of known partitions: their requests in flight
		// and waiting records stay in order.
		if j := slices.Index(old.idsOrNil(), id); j >= 0 {
			tq.parts[i] = old.parts[j]
			continue
		}
		tq.parts[i] = &partQueue{topic: topic, id: int32(id)}
	}
	if old == nil {
		v, _ = p.topics.LoadOrStore(topic, tq)
		return v.(*topicQueues), nil
	}
	p.topics.CompareAndSwap(topic, old, tq)
	return tq, nil
}

func (tq *topicQueues) idsOrNil() []int {
	if tq == nil {
		return nil
	}
	return tq.ids
}

// forget drops topic's queues (after it was deleted), so that the next
// Publish reads its partitions again.
func (p *producer) forget(topic string) { p.topics.Delete(topic) }

// keyed returns the partition of a record with key: Java's default
// partitioner, murmur2(key) & 0x7fffffff modulo the partition count.
func (tq *topicQueues) keyed(key []byte) *partQueue {
	var bal kafka.Murmur2Balancer
	i := bal.Balance(kafka.Message{Key: key}, tq.ids...)
	return tq.parts[slices.Index(tq.ids, i)]
}

// keyless returns the partition for messages without a key: one with no
// request in flight, so that they are sent at once, searching from a
// different partition each time to spread the load; when every partition
// is busy, the one whose request has been in flight longest, since it
// should return first.
func (tq *topicQueues) keyless() *partQueue {
	n := len(tq.parts)
	start := int(tq.next.Add(1) % uint32(n))
	var oldest *partQueue
	for i := range n {
		q := tq.parts[(start+i)%n]
		s := q.since.Load()
		if s == 0 {
			return q
		}
		if oldest == nil || s < oldest.since.Load() {
			oldest = q
		}
	}
	return oldest
}

// enqueue adds recs to q's queue and, when q has no request in flight,
// starts a sender for it.
func (p *producer) enqueue(q *partQueue, recs []*record) {
	q.mu.Lock()
	q.queue = append(q.queue, recs...)
	if q.busy {
		q.mu.Unlock()
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		recs := q.queue
		q.queue = nil
		q.mu.Unlock()
		for _, r := range recs {
			r.call.settle(r, fmt.Errorf("%w: the broker closed before the message was sent", mq.ErrClosed))
		}
		return
	}
	p.senders.Add(1)
	p.mu.Unlock()
	q.busy = true
	q.since.Store(time.Now().UnixNano())
	q.batch = p.take(q)
	if q.start == nil {
		q.start = func() { p.run(q) }
	}
	q.mu.Unlock()
	go q.start()
}

// take moves the first records of q's queue, up to maxCount records and
// maxBytes bytes (at least one), into a batch. q.mu must be held.
func (p *producer) take(q *partQueue) []*record {
	n, bytes := 0, 0
	for n < len(q.queue) && n < p.maxCount {
		s := q.queue[n].size - batchOverhead
		if n > 0 && bytes+s > p.maxBytes {
			break
		}
		bytes += s
		n++
	}
	batch := append(q.spare[:0], q.queue[:n]...)
	q.spare = nil
	rest := copy(q.queue, q.queue[n:])
	clear(q.queue[rest:])
	q.queue = q.queue[:rest]
	return batch
}

// run sends q's first batch, then whatever queued up meanwhile, until
// q's queue is empty.
func (p *producer) run(q *partQueue) {
	defer p.senders.Done()
	q.mu.Lock()
	batch := q.batch
	q.batch = nil
	q.mu.Unlock()
	for {
		p.send(q, batch)
		// The callers just answered are runnable now, most of them on
		// this thread; yield once so that those publishing again join
		// the next request instead of each starting a request of one.
		// (A yield, not a timer: nothing waits when nobody is runnable.)
		// A lone publisher gains too: its next Publish finds this sender
		// still running and joins its queue, which costs fewer
		// instructions than starting a sender again.
		runtime.Gosched()
		q.mu.Lock()
		clear(batch)
		q.spare = batch[:0]
		if len(q.queue) == 0 {
			q.busy = false
			q.since.Store(0)
			q.mu.Unlock()
			return
		}
		q.since.Store(time.Now().UnixNano())
		batch = p.take(q)
		q.mu.Unlock()
	}
}

// send delivers batch to q's partition and settles every record in it,
// retrying retryable failures with backoff for up to publishRetryFor.
// Records whose Publish call has returned (its ctx ended) are dropped
// before each attempt; when none is left, send stops.
func (p *producer) send(q *partQueue, batch []*record) {
	first := time.Now()
	delay := retryFirstDelay
	notFound := 0
	drain := p.b.life.DrainContext()
	for {
		batch = slices.DeleteFunc(batch, func(r *record) bool {
			if err := r.call.ctx.Err(); err != nil {
				r.call.settle(r, err)
				return true
			}
			return false
		})
		if len(batch) == 0 {
			return
		}
		failedAt := time.Now()
		err := p.produce(q, batch)
		if err == nil {
			for _, r := range batch {
				r.call.settle(r, nil)
			}
			return
		}
		err, retry, refresh := p.judge(err)
		if errors.Is(err, mq.ErrNotFound) {
			notFound++
			retry = notFound <= notFoundRetries
		}
		if drain.Err() != nil {
			err = fmt.Errorf("%w: Close's context ended before the broker answered (%v)", mq.ErrClosed, err)
			retry = false
		}
		if !retry || time.Since(first) > publishRetryFor {
			for _, r := range batch {
				r.call.settle(r, err)
			}
			return
		}
		p.b.log.Debug("kafka: produce failed; retrying", "topic", q.topic, "partition", q.id, "records", len(batch), "error", err)
		if refresh {
			p.refresh(failedAt)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-drain.Done():
			t.Stop()
		}
		delay = min(2*delay, retryMaxDelay)
	}
}

// produce sends one produce request with batch to q's partition and
// returns the partition's error, if any.
func (p *producer) produce(q *partQueue, batch []*record) error {
	req := q.req
	q.req = nil
	if req == nil {
		req = new(produceReq)
		req.msg.Topics = req.topics[:]
		req.topics[0].Topic = q.topic
		req.topics[0].Partitions = req.parts[:]
		req.parts[0].Partition = q.id
	}
	req.msg.Acks = p.acks
	req.msg.Timeout = int32(brokerAckTimeout / time.Millisecond)
	req.records.reset(batch)
	req.parts[0].RecordSet = protocol.RecordSet{Attributes: p.attrs, Records: &req.records}

	req.ctx = requestCtx{Context: p.b.life.DrainContext(), deadline: time.Now().Add(requestTimeout)}
	res, err := p.rt.RoundTrip(&req.ctx, p.addr, &req.msg)
	p.requests.Add(1)
	p.records.Add(int64(len(batch)))
	if err != nil {
		// The transport may still be writing the request: do not reuse it.
		return err
	}
	req.records.reset(nil)
	q.req = req
	if p.acks == 0 {
		return nil
	}
	r, ok := res.(*produceAPI.Response)
	if !ok {
		return fmt.Errorf("unexpected response %T to a produce request", res)
	}
	for _, t := range r.Topics {
		for _, pr := range t.Partitions {
			if t.Topic != q.topic || pr.Partition != q.id || pr.ErrorCode == 0 {
				continue
			}
			err := error(kafka.Error(pr.ErrorCode))
			if pr.ErrorMessage != "" {
				err = fmt.Errorf("%w: %s", err, pr.ErrorMessage)
			}
			return err
		}
	}
	return nil
}

// judge maps a produce failure to the driver's errors, says whether to
// send the batch again, and whether the transport's metadata should be
// refreshed first: after a leader change, a missing leader, partition or
// topic, and a failed connection (the broker may have moved or
// restarted).
func (p *producer) judge(err error) (_ error, retry, refresh bool) {
	var ke kafka.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The request timed out (or Close's context ended): the leader
		// may be stalled, and whether it stored the batch is unknown.
		return driver.Retryable(fmt.Errorf("no answer from the partition leader (%v)", err)), true, true
	case errors.Is(err, protocol.ErrNoTopic), errors.Is(err, protocol.ErrNoPartition):
		return fmt.Errorf("%w: %v", mq.ErrNotFound, err), true, true
	case errors.As(err, &ke):
		c := classify(err)
		switch ke {
		case kafka.BrokerNotAvailable:
			// The transport's metadata names a broker it has no
			// connection group for (one that joined or restarted).
			return driver.Retryable(c), true, true
		case kafka.NotLeaderForPartition, kafka.LeaderNotAvailable, kafka.UnknownTopicOrPartition,
			kafka.FencedLeaderEpoch, kafka.UnknownLeaderEpoch, kafka.NetworkException, kafka.KafkaStorageError:
			return c, true, true
		}
		return c, mq.IsRetryable(c), false
	}
	c := classify(err)
	return c, mq.IsRetryable(c), mq.IsRetryable(c)
}

// refresh makes the transport fetch the cluster's metadata now, unless a
// refresh ended after failedAt. kafka-go's Transport refreshes its cache
// every few seconds and after it creates topics; an empty CreateTopics
// request (which creates nothing) is the public way to ask for a refresh
// at once, and the transport returns once the new metadata is in.
func (p *producer) refresh(failedAt time.Time) {
	if p.refreshed.Load() > failedAt.UnixNano() {
		return
	}
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	if p.refreshed.Load() > failedAt.UnixNano() {
		return
	}
	ctx, cancel := context.WithTimeout(p.b.life.DrainContext(), 5*time.Second)
	defer cancel()
	if _, err := p.rt.RoundTrip(ctx, p.addr, &createtopicsAPI.Request{}); err != nil {
		p.b.log.Debug("kafka: refresh metadata", "error", err)
	}
	p.refreshed.Store(time.Now().UnixNano())
}

// close stops new senders and waits for the running ones to finish their
// queues. If ctx ends first, the lifecycle's drain context (which bounds
// every request) has ended too, so the senders fail what is left and
// return; close waits for that, at most CloseGrace.
func (p *producer) close(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.senders.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t := time.NewTimer(driver.CloseGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
	}
}
