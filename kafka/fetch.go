package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	fetchapi "github.com/segmentio/kafka-go/protocol/fetch"
)

// fetchMaxWait is how long the broker holds a fetch that finds nothing
// new; it also bounds how long a stopping fetcher waits, since the
// request is abandoned when its ctx ends.
const fetchMaxWait = 500 * time.Millisecond

// fetcher reads one partition with Fetch requests of its own, so that it
// can honour read_committed as the Java client does: kafka-go's Reader
// passes the isolation level to the broker but neither drops the records
// of aborted transactions nor skips control batches (kafka-go #1332).
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
	// the batch being read (read_committed only).
	aborted map[int64]bool
	// arena holds the keys, bodies and strings of the messages fetched.
	arena arena
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
	addr := kafka.TCP(b.cfg.Brokers...)
	maxBytes := int32(max(4<<20, 2*b.maxRecord))
	var lastWarn time.Time
	for {
		res, err := f.tr.RoundTrip(ctx, addr, &fetchapi.Request{
			ReplicaID:      -1,
			MaxWaitTime:    int32(fetchMaxWait.Milliseconds()),
			MinBytes:       1,
			MaxBytes:       maxBytes,
			IsolationLevel: b.cfg.Isolation.wire(),
			SessionID:      0,  // no fetch session
			SessionEpoch:   -1, // a full, sessionless fetch
			Topics: []fetchapi.RequestTopic{{
				Topic: s.topic,
				Partitions: []fetchapi.RequestPartition{{
					Partition:          int32(p.id),
					CurrentLeaderEpoch: -1,
					FetchOffset:        f.offset,
					LogStartOffset:     -1,
					PartitionMaxBytes:  maxBytes,
				}},
			}},
		})
		if ctx.Err() != nil {
			return
		}
		var rp *fetchapi.ResponsePartition
		if err == nil {
			rp, err = responsePartition(res, s.topic, p.id)
		}
		if err == nil {
			err = kerr(rp.ErrorCode)
		}
		switch {
		case err == nil:
			if err := f.records(ctx, rp); err != nil {
				return // ctx ended or the dispatcher stopped
			}
			continue
		case errors.Is(err, kafka.OffsetOutOfRange):
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
		s.log.Log(ctx, level, "kafka: fetch failed; retrying", "partition", p.id, "error", err)
		t := time.NewTimer(time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// responsePartition finds partition id of topic in a fetch response.
func responsePartition(m protocol.Message, topic string, id int) (*fetchapi.ResponsePartition, error) {
	res, ok := m.(*fetchapi.Response)
	if !ok {
		return nil, fmt.Errorf("kafka: Fetch: unexpected response %T", m)
	}
	if err := kerr(res.ErrorCode); err != nil {
		return nil, err
	}
	for i := range res.Topics {
		if res.Topics[i].Topic != topic {
			continue
		}
		for j := range res.Topics[i].Partitions {
			if rp := &res.Topics[i].Partitions[j]; int(rp.Partition) == id {
				return rp, nil
			}
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
// group's committed offset moves past them. It returns an error only when
// ctx ends or the dispatcher stops.
func (f *fetcher) records(ctx context.Context, rp *fetchapi.ResponsePartition) error {
	p := f.p
	s := p.g.s
	committed := s.b.cfg.Isolation == ReadCommitted
	// Each response lists the aborted transactions that overlap what it
	// holds, so the state starts afresh with each.
	clear(f.aborted)
	var txns []fetchapi.ResponseTransaction
	if committed && len(rp.AbortedTransactions) > 0 {
		txns = slices.Clone(rp.AbortedTransactions)
		slices.SortFunc(txns, func(a, b fetchapi.ResponseTransaction) int {
			return cmp.Compare(a.FirstOffset, b.FirstOffset)
		})
		if f.aborted == nil {
			f.aborted = map[int64]bool{}
		}
	}
	stream, ok := rp.RecordSet.Records.(*protocol.RecordStream)
	if !ok {
		return nil // no records
	}
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
		for len(txns) > 0 && txns[0].FirstOffset <= base {
			f.aborted[txns[0].ProducerID] = true
			txns = txns[1:]
		}
		drop := control || (committed && transactional && f.aborted[producer])
		if control && committed {
			// A marker ends the producer's transaction, aborted or not.
			delete(f.aborted, producer)
		}
		for {
			r, err := batch.ReadRecord()
			if err != nil {
				break // io.EOF, or a truncated batch: fetched again from f.offset
			}
			off := r.Offset
			if off < f.offset {
				closeRecord(r)
				continue // a batch that began before the fetch offset
			}
			if drop {
				closeRecord(r)
				p.t.skipTo(off + 1)
				f.offset = off + 1
				continue
			}
			km, err := toMessage(&f.arena, s.topic, p.id, rp.HighWatermark, r)
			closeRecord(r)
			if err != nil {
				s.log.Warn("kafka: cannot read a fetched record; fetching it again", "partition", p.id, "offset", off, "error", err)
				return nil
			}
			d := p.newDelivery(km, &f.arena)
			if err := s.disp.Submit(ctx, &d.Delivery); err != nil {
				d.unqueue() // not taken: never handled here
				return err
			}
			f.offset = off + 1
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
