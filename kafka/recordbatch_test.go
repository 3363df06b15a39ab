package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// encodeBatch returns records as one record batch of format v2, written
// by kafka-go's encoder, starting at offset base.
func encodeBatch(t *testing.T, c compress.Compression, base int64, records ...protocol.Record) []byte {
	t.Helper()
	rs := protocol.RecordSet{Version: 2, Attributes: protocol.Attributes(c), Records: protocol.NewRecordReader(records...)}
	var buf bytes.Buffer
	if _, err := rs.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()[4:] // the record set's size
	binary.BigEndian.PutUint64(b, uint64(base))
	return b
}

// The fetcher's own reading of record batches gives what kafka-go's
// encoder wrote, in every compression: offsets, times, null and empty
// keys and values, binary bytes, headers with null values.
func TestRecordBatchRoundTrip(t *testing.T) {
	ts := time.UnixMilli(1733340000123)
	big := bytes.Repeat([]byte{0, 0xff, 'x'}, 700)
	records := func() []protocol.Record { // afresh each time: writing reads the values
		return []protocol.Record{
			{Offset: 0, Time: ts, Key: protocol.NewBytes([]byte("k")), Value: protocol.NewBytes([]byte("v0")),
				Headers: []protocol.Header{{Key: headerID, Value: []byte("id-0")}, {Key: "null", Value: nil}, {Key: "bin", Value: []byte{0xfe, 0}}}},
			{Offset: 1, Time: ts.Add(time.Second), Key: nil, Value: protocol.NewBytes([]byte{})},
			{Offset: 2, Time: ts.Add(2 * time.Second), Key: protocol.NewBytes([]byte{0, 0, 0, 0, 0, 0, 0, 0xc8}), Value: protocol.NewBytes(big)},
		}
	}
	for _, c := range []compress.Compression{0, compress.Gzip, compress.Snappy, compress.Lz4, compress.Zstd} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			raw := encodeBatch(t, c, 100, records()...)
			got, rest, ok := nextBatch(append(raw, 1, 2, 3))
			if !ok || len(got) != len(raw) || len(rest) != 3 {
				t.Fatalf("nextBatch: got ok %v, %d bytes and %d left, want %d and 3", ok, len(got), len(rest), len(raw))
			}
			if _, _, ok := nextBatch(raw[:len(raw)-1]); ok {
				t.Error("nextBatch of a cut batch: got ok, want not")
			}
			b, err := parseBatch(got)
			if err != nil {
				t.Fatal(err)
			}
			if b.base != 100 || b.control() || b.transactional() {
				t.Errorf("batch: got base %d control %v transactional %v, want 100, false, false", b.base, b.control(), b.transactional())
			}
			p := testPartition()
			f := &fetcher{p: p}
			var msgs []kafka.Message
			for {
				r, ok := b.next()
				if !ok {
					break
				}
				km, err := f.message(&fetchedPartition{highWatermark: 103}, &r)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, km)
			}
			if b.errCorruption != nil {
				t.Fatal(b.errCorruption)
			}
			if len(msgs) != 3 {
				t.Fatalf("got %d records, want 3", len(msgs))
			}
			m0, m1, m2 := msgs[0], msgs[1], msgs[2]
			if m0.Offset != 100 || m1.Offset != 101 || m2.Offset != 102 {
				t.Errorf("offsets: got %d %d %d, want 100 101 102", m0.Offset, m1.Offset, m2.Offset)
			}
			if !m0.Time.Equal(ts) || !m2.Time.Equal(ts.Add(2*time.Second)) {
				t.Errorf("times: got %v and %v, want %v and %v", m0.Time, m2.Time, ts, ts.Add(2*time.Second))
			}
			if string(m0.Key) != "k" || string(m0.Value) != "v0" || m0.HighWaterMark != 103 {
				t.Errorf("record 0: got key %q value %q hwm %d", m0.Key, m0.Value, m0.HighWaterMark)
			}
			if len(m0.Headers) != 3 || m0.Headers[0].Key != headerID || string(m0.Headers[0].Value) != "id-0" ||
				m0.Headers[1].Key != "null" || m0.Headers[1].Value != nil || !bytes.Equal(m0.Headers[2].Value, []byte{0xfe, 0}) {
				t.Errorf("record 0 headers: got %q", m0.Headers)
			}
			if m1.Key != nil || m1.Value == nil || len(m1.Value) != 0 || m1.Headers != nil {
				t.Errorf("record 1: got key %v (want null), value %v (want empty, not null), headers %v", m1.Key, m1.Value, m1.Headers)
			}
			if !bytes.Equal(m2.Key, []byte{0, 0, 0, 0, 0, 0, 0, 0xc8}) || !bytes.Equal(m2.Value, big) {
				t.Errorf("record 2: got key %x and a value of %d bytes, want the binary key and %d bytes", m2.Key, len(m2.Value), len(big))
			}
			if cap(m0.Value) != len(m0.Value) {
				t.Errorf("value capacity %d, want %d: an append could overwrite the next field", cap(m0.Value), len(m0.Value))
			}
		})
	}
}

func TestRecordBatchCRC(t *testing.T) {
	raw := encodeBatch(t, 0, 0, protocol.Record{Value: protocol.NewBytes([]byte("value"))})
	raw[len(raw)-3] ^= 1
	if _, err := parseBatch(raw); err == nil {
		t.Error("parseBatch of a batch with a flipped bit: got nil error, want a CRC failure")
	}
}

// A fetch request written by the fetcher is read back by kafka-go's
// decoder of the same version, and a response in kafka-go's encoding is
// read by the fetcher.
func TestFetchRequestVersions(t *testing.T) {
	for v := int16(minFetchVersion); v <= maxFetchVersion; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			r := &fetchRequest{clientID: "mq", topic: "t", partitions: []fetchOffset{{partition: 2, offset: 42}},
				maxWait: 500, maxBytes: 1 << 20, isolation: 1, version: v, corr: 7}
			b := r.encode()
			if got := int(binary.BigEndian.Uint32(b)); got != len(b)-4 {
				t.Fatalf("size: got %d, want %d", got, len(b)-4)
			}
			if key, ver, corr := binary.BigEndian.Uint16(b[4:]), int16(binary.BigEndian.Uint16(b[6:])), int32(binary.BigEndian.Uint32(b[8:])); key != uint16(protocol.Fetch) || ver != v || corr != 7 {
				t.Errorf("header: got key %d version %d correlation %d", key, ver, corr)
			}
		})
	}
}

// Under LogAppendTime every record of a batch has the batch's maximum
// timestamp, the broker's append time, as the Java client reads it.
func TestRecordBatchLogAppendTime(t *testing.T) {
	ts := time.UnixMilli(1733340000000)
	raw := encodeBatch(t, 0, 0, protocol.Record{Time: ts, Value: protocol.NewBytes([]byte("v"))})
	appended := ts.Add(time.Hour)
	binary.BigEndian.PutUint16(raw[batchAttrsAt:], binary.BigEndian.Uint16(raw[batchAttrsAt:])|attrLogAppend)
	binary.BigEndian.PutUint64(raw[35:], uint64(appended.UnixMilli()))
	binary.BigEndian.PutUint32(raw[batchCRCAt:], crc32.Checksum(raw[batchAttrsAt:], castagnoli))
	b, err := parseBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := b.next()
	if !ok || !r.time.Equal(appended) {
		t.Errorf("got time %v (ok %v), want the append time %v", r.time, ok, appended)
	}
}

// A batch whose last records compaction removed ends where the batch
// does: the fetch offset and the commit point move past it, or the next
// fetch would return the same batch for ever.
func TestFetchMovesPastCompactedBatchEnd(t *testing.T) {
	raw := encodeBatch(t, 0, 10,
		protocol.Record{Offset: 0, Value: protocol.NewBytes([]byte("a"))},
		protocol.Record{Offset: 1, Value: protocol.NewBytes([]byte("b"))})
	binary.BigEndian.PutUint32(raw[23:], 4) // offsets 12 to 14 compacted away
	binary.BigEndian.PutUint32(raw[batchCRCAt:], crc32.Checksum(raw[batchAttrsAt:], castagnoli))

	ctx := t.Context()
	b := &Broker{log: slog.New(slog.DiscardHandler)}
	s := &subscription{b: b, topic: "t", cfg: driver.SubscribeConfig{Group: "g"}}
	handled := make(chan string, 2)
	s.disp = driver.NewDispatcher(ctx, func(_ context.Context, m *mq.Message) error {
		handled <- string(m.Body)
		return nil
	}, driver.DispatcherConfig{Concurrency: 1, Logger: b.log})
	t.Cleanup(func() { s.disp.Shutdown(context.Background()) })
	p := newPartition(&generation{s: s}, 0, 10, committedAttempts{})
	f := &fetcher{p: p, offset: 10}
	if err := f.records(ctx, &fetchedPartition{records: raw}); err != nil {
		t.Fatal(err)
	}
	if f.offset != 15 {
		t.Errorf("fetch offset: got %d, want 15 (past the batch)", f.offset)
	}
	for range 2 {
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatal("the batch's records were not handled")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := p.t.toCommit()
		if c.offset == 15 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit point: got %d, want 15", c.offset)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
