package kafka

import (
	"io"

	"github.com/segmentio/kafka-go/protocol"

	"github.com/seedmq/mq"
)

// record is one message on its way to a partition: its wire fields and
// the Publish call waiting for it.
type record struct {
	key     []byte // nil for a message without a Key (a null Kafka key)
	value   []byte
	headers []protocol.Header // the ID header first
	size    int               // upper bound of its encoded size (recordSize)
	id      string            // Message.ID, for errors
	call    *publishCall
	index   int   // the message's index in the call
	err     error // the outcome, set when settled
}

// newRecord fills r from m, taking its headers from hdrs (which has room
// for len(m.Header)+1). Key, body and header values share m's memory:
// the encoder only reads them.
func newRecord(r *record, m *mq.Message, hdrs []protocol.Header) {
	r.id = m.ID
	r.value = m.Body
	if r.value == nil {
		r.value = []byte{}
	}
	r.key = nil
	if m.Key != "" {
		r.key = bytesOf(m.Key)
	}
	hdrs = append(hdrs, protocol.Header{Key: headerID, Value: bytesOf(m.ID)})
	for k, v := range m.Header {
		hdrs = append(hdrs, protocol.Header{Key: k, Value: bytesOf(v)})
	}
	r.headers = hdrs
	r.size = recordSize(r.key, r.value, r.headers)
}

// recordSize bounds from above the bytes a record takes in a batch of its
// own: the batch header, the record's fixed fields with varints at their
// widest for these sizes, key, value and headers.
func recordSize(key, value []byte, headers []protocol.Header) int {
	n := batchOverhead + recordOverhead + len(key) + len(value)
	for _, h := range headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// recordReader hands a batch's records to kafka-go's encoder, which reads
// each record's key and value once, before asking for the next. It reuses
// one Record and two byte readers, so encoding a batch allocates nothing
// per record; reset rewinds it for a retry.
type recordReader struct {
	recs []*record
	next int
	rec  protocol.Record
	key  byteReader
	val  byteReader
}

func (rr *recordReader) reset(recs []*record) {
	rr.recs, rr.next = recs, 0
}

// ReadRecord returns the next record, valid until the next call, or
// io.EOF after the last.
func (rr *recordReader) ReadRecord() (*protocol.Record, error) {
	if rr.next >= len(rr.recs) {
		return nil, io.EOF
	}
	r := rr.recs[rr.next]
	rr.next++
	rr.rec = protocol.Record{Offset: int64(rr.next - 1), Headers: r.headers}
	if r.key != nil {
		rr.key.b = r.key
		rr.rec.Key = &rr.key
	}
	rr.val.b = r.value
	rr.rec.Value = &rr.val
	return &rr.rec, nil
}

// byteReader is a protocol.Bytes over a byte slice that it consumes.
type byteReader struct{ b []byte }

func (br *byteReader) Read(p []byte) (int, error) {
	if len(br.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, br.b)
	br.b = br.b[n:]
	return n, nil
}

// WriteTo lets io.Copy, which the encoder uses, write the bytes without
// a buffer of its own.
func (br *byteReader) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(br.b)
	br.b = br.b[n:]
	return int64(n), err
}

func (br *byteReader) Len() int     { return len(br.b) }
func (br *byteReader) Close() error { return nil }
