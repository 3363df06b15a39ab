package kafka

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/seedmq/mq"
)

// fetchMaxWait is how long the broker holds a fetch that finds nothing
// new; it also bounds how long a stopping fetcher waits, since the
// request is abandoned when its ctx ends.
const fetchMaxWait = 500 * time.Millisecond

// fetcher reads one partition with Fetch requests of its own, so that it
// can honour read_committed as the Java client does: kafka-go's Reader
// passes the isolation level to the broker but neither drops the records
// of aborted transactions nor skips control batches (kafka-go #1332). It
// reads the responses itself (see fetchRequest): a record's key, value
// and headers are slices of the response, not copies.
//
// It uses a kafka.Transport of its own: a fetch that finds nothing waits
// at the broker for fetchMaxWait, and Kafka answers a connection's
// requests in order, so a shared connection would hold up the other
// partitions' fetches, commits and publishes behind it.
type fetcher struct {
	p      *partition
	tr     *kafka.Transport
	offset int64 // next offset to fetch
	// aborted holds the producers whose aborted transaction is open at
	// the batch being read (read_committed only); txns lists the aborted
	// transactions of the response not yet reached, by first offset.
	aborted map[int64]bool
	txns    []abortedTxn
	// arena holds the strings of the messages fetched (and the keys and
	// values of legacy message sets); hdrs the headers of their native
	// kafka.Message.
	arena arena
	hdrs  []kafka.Header
}

// fetch reads the partition from its start offset and submits each
// message to the dispatcher, until ctx ends.
func (p *partition) fetch(ctx context.Context) {
	tr, closeConns := p.g.s.b.newTransport()
	defer closeConns()
	f := &fetcher{p: p, tr: tr, offset: p.start}
	f.run(ctx)
}

func (f *fetcher) run(ctx context.Context) {
	p := f.p
	s := p.g.s
	b := s.b
	ctx, cancel := context.WithCancel(ctx)
	ahead := f.startAhead(ctx)
	defer ahead.stop(cancel)
	var lastWarn time.Time
	for {
		r, ok := ahead.get(ctx, f.offset)
		if !ok {
			return
		}
		res, err := r.res, r.err
		var fp *fetchedPartition
		if err == nil {
			fp, err = responsePartition(res, s.topic, p.id)
		}
		if err == nil {
			err = kerr(fp.errorCode)
		}
		if err == nil {
			// Ask for what follows while this response is delivered; if
			// delivery ends elsewhere (a batch that does not parse), get
			// drops that answer and asks again from f.offset.
			if next := fetchedEnd(fp.records, f.offset); next > f.offset {
				ahead.ask(next)
			}
			err = f.records(ctx, fp)
			if err == nil {
				continue
			}
			if ctx.Err() != nil || errors.Is(err, mq.ErrClosed) {
				return // ctx ended or the dispatcher stopped
			}
			// A batch that does not parse: fetched again after a pause.
		}
		if errors.Is(err, kafka.OffsetOutOfRange) {
			// The committed offset was deleted by retention (or lies past
			// the end after an unclean leader election): restart where a
			// new group would.
			o, lerr := b.listOffsets(ctx, s.topic, []int{p.id}, s.cfg.StartAt)
			if lerr == nil {
				s.log.Warn("kafka: the fetch offset is out of range; restarting at the group's start position", "partition", p.id, "offset", f.offset, "restart", o[p.id])
				f.offset = o[p.id]
				p.t.skipTo(f.offset)
				continue
			}
			err = lerr
		}
		level := slog.LevelDebug
		if time.Since(lastWarn) >= 10*time.Second {
			level, lastWarn = slog.LevelWarn, time.Now()
		}
		s.log.Log(ctx, level, "kafka: fetch failed; retrying", "partition", p.id, "offset", f.offset, "error", err)
		t := time.NewTimer(time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// fetchAhead sends a fetcher's Fetch requests from a goroutine of its
// own, so that the next response is on its way while the last is being
// delivered: at most one request is in flight, and at most one answer
// waits, so a partition holds at most two responses.
type fetchAhead struct {
	want    chan int64       // the offset to fetch from
	got     chan fetchAnswer // its answer
	asked   bool             // a request was asked for and its answer not taken
	askedAt int64
	done    chan struct{} // closed when the goroutine returns
}

// fetchAnswer is the answer to a Fetch.
type fetchAnswer struct {
	res protocol.Message
	err error
}

// startAhead starts f's fetching goroutine, which runs until ctx ends.
func (f *fetcher) startAhead(ctx context.Context) *fetchAhead {
	s := f.p.g.s
	b := s.b
	req := &fetchRequest{
		clientID:   b.cfg.ClientID,
		topic:      s.topic,
		partitions: make([]fetchOffset, 1),
		maxWait:    int32(fetchMaxWait.Milliseconds()),
		maxBytes:   int32(max(fetchMaxBytes, 2*b.maxRecord)),
		isolation:  b.cfg.Isolation.wire(),
	}
	addr := kafka.TCP(b.cfg.Brokers...)
	return startAhead(ctx, func(ctx context.Context, offset int64) (protocol.Message, error) {
		req.partitions[0] = fetchOffset{partition: int32(f.p.id), offset: offset}
		return f.tr.RoundTrip(ctx, addr, req)
	})
}

// startAhead starts a goroutine that calls fetch for each offset asked,
// until ctx ends.
func startAhead(ctx context.Context, fetch func(context.Context, int64) (protocol.Message, error)) *fetchAhead {
	a := &fetchAhead{want: make(chan int64, 1), got: make(chan fetchAnswer, 1), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			var offset int64
			select {
			case offset = <-a.want:
			case <-ctx.Done():
				return
			}
			res, err := fetch(ctx, offset)
			select {
			case a.got <- fetchAnswer{res: res, err: err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return a
}

// ask starts a fetch from offset, unless one is under way.
func (a *fetchAhead) ask(offset int64) {
	if a.asked {
		return
	}
	a.asked, a.askedAt = true, offset
	a.want <- offset // never blocks: the goroutine has taken the last
}

// get returns the answer to a fetch from offset, asking for it unless
// it was asked for; the answer to a fetch ahead from another offset is
// dropped. ok is false when ctx ended.
func (a *fetchAhead) get(ctx context.Context, offset int64) (_ fetchAnswer, ok bool) {
	if a.asked && a.askedAt != offset {
		// Delivery did not end where the fetch ahead began.
		select {
		case <-a.got:
			a.asked = false
		case <-ctx.Done():
			return fetchAnswer{}, false
		}
	}
	a.ask(offset)
	select {
	case r := <-a.got:
		a.asked = false
		return r, ctx.Err() == nil
	case <-ctx.Done():
		return fetchAnswer{}, false
	}
}

// stop ends the goroutine (cancel ends its ctx) and waits for it.
func (a *fetchAhead) stop(cancel context.CancelFunc) {
	cancel()
	<-a.done
}

// fetchedEnd returns the offset after the last complete record batch of
// records, a partition's fetched data, or from if there is none: where
// the next fetch begins once every record is delivered. It reads only
// batch headers; a message set of format v0 or v1 ends the scan there.
func fetchedEnd(records []byte, from int64) int64 {
	end := from
	for {
		raw, rest, ok := nextBatch(records)
		if !ok || len(raw) < batchHeaderLen || raw[batchMagicAt] != 2 {
			return end
		}
		base := int64(binary.BigEndian.Uint64(raw[0:]))
		last := base + int64(int32(binary.BigEndian.Uint32(raw[batchLastDeltaAt:])))
		end = max(end, last+1)
		records = rest
	}
}

// fetchMaxBytes is the most a fetch asks for per partition (and in all),
// unless the broker accepts larger records.
const fetchMaxBytes = 4 << 20

// responsePartition finds partition id of topic in a fetch response.
func responsePartition(m protocol.Message, topic string, id int) (*fetchedPartition, error) {
	res, ok := m.(*fetchResponse)
	if !ok {
		return nil, fmt.Errorf("kafka: Fetch: unexpected response %T", m)
	}
	if err := kerr(res.errorCode); err != nil {
		return nil, err
	}
	for i := range res.partitions {
		if rp := &res.partitions[i]; int(rp.partition) == id {
			return rp, nil
		}
	}
	return nil, fmt.Errorf("kafka: Fetch: no answer for topic %q partition %d", topic, id)
}

// records delivers the records of one fetched partition, in offset
// order, and moves the fetch offset past the last record seen. Under
// read_committed it drops the records of aborted transactions, using the
// response's list of aborted transactions as the Java client does, and in
// every mode it skips control batches (transaction markers). Records it
// does not deliver still count as handled for the commit point, so a
// group's committed offset moves past them. It returns the dispatcher's
// error (ctx's, or mq.ErrClosed) if it stops taking messages, or the
// error of a batch that does not parse.
func (f *fetcher) records(ctx context.Context, fp *fetchedPartition) error {
	committed := f.p.g.s.b.cfg.Isolation == ReadCommitted
	// Each response lists the aborted transactions that overlap what it
	// holds, so the state starts afresh with each.
	clear(f.aborted)
	f.txns = f.txns[:0]
	if committed && len(fp.aborted) > 0 {
		f.txns = append(f.txns, fp.aborted...)
		slices.SortFunc(f.txns, func(a, b abortedTxn) int {
			return cmp.Compare(a.firstOffset, b.firstOffset)
		})
		if f.aborted == nil {
			f.aborted = map[int64]bool{}
		}
	}
	data := fp.records
	for {
		raw, rest, ok := nextBatch(data)
		if !ok {
			return nil // the end, or a batch cut at the size limit: fetched again from f.offset
		}
		if raw[batchMagicAt] != 2 {
			// A message set of format v0 or v1, from a topic written by
			// clients older than Kafka 0.11: kafka-go reads those.
			return f.legacy(ctx, fp, data)
		}
		data = rest
		b, err := parseBatch(raw)
		if err != nil {
			return err
		}
		drop := f.dropBatch(b.base, b.control(), b.transactional(), b.producerID)
		for {
			r, ok := b.next()
			if !ok {
				break
			}
			if r.offset < f.offset {
				continue // a batch that began before the fetch offset
			}
			if drop {
				f.skip(r.offset)
				continue
			}
			km, err := f.message(fp, &r)
			if err != nil {
				return err
			}
			if err := f.deliver(ctx, km); err != nil {
				return err
			}
		}
		if b.errCorruption != nil {
			return b.errCorruption
		}
		if end := b.base + int64(b.lastDelta); end >= f.offset {
			// Compaction may have removed the batch's last records, or
			// all of them: move past the batch, or the next fetch would
			// return it again.
			f.skip(end)
		}
	}
}

// dropBatch reports whether the records of a batch are not delivered:
// a control batch (a transaction marker), or under read_committed one of
// an aborted transaction. It keeps the aborted-transaction state up to
// date; base is the batch's first offset.
func (f *fetcher) dropBatch(base int64, control, transactional bool, producer int64) bool {
	for len(f.txns) > 0 && f.txns[0].firstOffset <= base {
		f.aborted[f.txns[0].producerID] = true
		f.txns = f.txns[1:]
	}
	drop := control || (transactional && f.aborted[producer])
	if control && f.aborted != nil {
		// A marker ends the producer's transaction, aborted or not.
		delete(f.aborted, producer)
	}
	return drop
}

// skip moves the fetch offset and the commit point past a record that is
// not delivered.
func (f *fetcher) skip(offset int64) {
	f.p.t.skipTo(offset + 1)
	f.offset = offset + 1
}

// deliver hands km to the dispatcher and moves the fetch offset past it.
func (f *fetcher) deliver(ctx context.Context, km kafka.Message) error {
	p := f.p
	d := p.newDelivery(km, &f.arena)
	if err := p.g.s.disp.Submit(ctx, &d.Delivery); err != nil {
		d.unqueue() // not taken: never handled here
		return err
	}
	f.offset = km.Offset + 1
	return nil
}

// message makes the native message of r, whose key, value and header
// values are slices of the fetch response and whose header keys are
// strings of it: nothing writes to a response once read.
func (f *fetcher) message(fp *fetchedPartition, r *rawRecord) (kafka.Message, error) {
	p := f.p
	km := kafka.Message{
		Topic:         p.g.s.topic,
		Partition:     p.id,
		Offset:        r.offset,
		HighWaterMark: fp.highWatermark,
		Key:           r.key,
		Value:         r.value,
		Time:          r.time,
	}
	if r.nheader > 0 {
		km.Headers = f.headerSlice(r.nheader)
		h := r.headers
		for i := range km.Headers {
			key, value, rest, err := header(h)
			if err != nil {
				return kafka.Message{}, err
			}
			km.Headers[i] = kafka.Header{Key: unsafeString(key), Value: value}
			h = rest
		}
	}
	return km, nil
}

// headerSlice returns room for n headers, from shared blocks.
func (f *fetcher) headerSlice(n int) []kafka.Header {
	const block = 256
	if n > block/4 {
		return make([]kafka.Header, n)
	}
	if len(f.hdrs) < n {
		f.hdrs = make([]kafka.Header, block)
	}
	h := f.hdrs[:n:n]
	f.hdrs = f.hdrs[n:]
	return h
}

// unsafeString returns b as a string without copying it; b must never be
// written again.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// legacy delivers the rest of a partition's records, data, that start
// with a message set of format v0 or v1, through kafka-go's decoder.
func (f *fetcher) legacy(ctx context.Context, fp *fetchedPartition, data []byte) error {
	var rs protocol.RecordSet
	sized := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(data)), uint32(len(data)))
	sized = append(sized, data...)
	if _, err := rs.ReadFrom(bufio.NewReader(bytes.NewReader(sized))); err != nil {
		return err
	}
	stream, ok := rs.Records.(*protocol.RecordStream)
	if !ok {
		return nil // no records
	}
	s := f.p.g.s
	for _, batch := range stream.Records {
		var producer int64 = -1
		var control, transactional bool
		var base int64
		switch bt := batch.(type) {
		case *protocol.ControlBatch:
			control, producer, base = true, bt.ProducerID, bt.BaseOffset
		case *protocol.RecordBatch:
			transactional, producer, base = bt.Attributes.Transactional(), bt.ProducerID, bt.BaseOffset
		case *protocol.MessageSet:
			base = bt.BaseOffset
		}
		drop := f.dropBatch(base, control, transactional, producer)
		for {
			r, err := batch.ReadRecord()
			if err != nil {
				break // io.EOF, or a truncated batch: fetched again from f.offset
			}
			off := r.Offset
			if off < f.offset {
				closeRecord(r)
				continue
			}
			if drop {
				closeRecord(r)
				f.skip(off)
				continue
			}
			km, err := toMessage(&f.arena, s.topic, f.p.id, fp.highWatermark, r)
			closeRecord(r)
			if err != nil {
				return err
			}
			if err := f.deliver(ctx, km); err != nil {
				return err
			}
		}
	}
	return nil
}

// toMessage copies a fetched record into a kafka.Message, the native
// delivery Message.As exposes. Its key and value share one piece of
// memory from a; a null key or value stays nil.
func toMessage(a *arena, topic string, partition int, hwm int64, r *protocol.Record) (kafka.Message, error) {
	var kn, vn int
	if r.Key != nil {
		kn = r.Key.Len()
	}
	if r.Value != nil {
		vn = r.Value.Len()
	}
	buf := a.alloc(kn + vn)
	var key, value []byte
	if r.Key != nil {
		key = buf[:kn:kn]
		if _, err := io.ReadFull(r.Key, key); err != nil {
			return kafka.Message{}, err
		}
	}
	if r.Value != nil {
		value = buf[kn:]
		if _, err := io.ReadFull(r.Value, value); err != nil {
			return kafka.Message{}, err
		}
	}
	return kafka.Message{
		Topic:         topic,
		Partition:     partition,
		Offset:        r.Offset,
		HighWaterMark: hwm,
		Key:           key,
		Value:         value,
		Headers:       r.Headers,
		Time:          r.Time,
	}, nil
}

// closeRecord releases the buffers behind a fetched record.
func closeRecord(r *protocol.Record) {
	if r.Key != nil {
		r.Key.Close()
	}
	if r.Value != nil {
		r.Value.Close()
	}
}
