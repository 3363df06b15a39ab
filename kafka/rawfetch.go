package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/segmentio/kafka-go/protocol"
)

// Fetch versions the fetcher speaks: v4 brings isolation levels and the
// aborted transactions of a response, v11 is the last before the
// flexible (tagged-field) encoding.
const (
	minFetchVersion = 4
	maxFetchVersion = 11
)

// fetchRequest is a Fetch request for partitions of one topic led by one
// broker. It reaches the broker through a kafka.Transport, which routes
// it to the partitions' leader (Broker) and hands it the connection
// (RawExchange): it writes itself and reads the response whole into one
// buffer, which the records it holds then point into, so that a record's
// key, value and headers are not copied piece by piece as kafka-go's
// generic decoder does.
//
// It is not safe for concurrent use; a fetcher reuses its own.
type fetchRequest struct {
	clientID   string
	topic      string
	partitions []fetchOffset
	maxWait    int32 // milliseconds
	maxBytes   int32 // per response and per partition
	isolation  int8
	version    int16
	corr       int32
	out        []byte // the encoded request, reused
}

// fetchOffset is one partition of a fetchRequest.
type fetchOffset struct {
	partition int32
	offset    int64
}

// fetchResponse is the answer to a fetchRequest.
type fetchResponse struct {
	errorCode  int16
	partitions []fetchedPartition
}

// fetchedPartition is one partition of a fetchResponse.
type fetchedPartition struct {
	partition     int32
	errorCode     int16
	highWatermark int64
	aborted       []abortedTxn // in response order
	records       []byte       // record batches, the last possibly truncated
}

// abortedTxn is an aborted transaction a fetch response lists.
type abortedTxn struct {
	producerID  int64
	firstOffset int64
}

func (*fetchRequest) ApiKey() protocol.ApiKey  { return protocol.Fetch }
func (*fetchResponse) ApiKey() protocol.ApiKey { return protocol.Fetch }

// Broker returns the leader of the request's partitions, which the
// transport sends it to.
func (r *fetchRequest) Broker(cluster protocol.Cluster) (protocol.Broker, error) {
	leader := protocol.Broker{ID: -1}
	t, ok := cluster.Topics[r.topic]
	if !ok {
		return leader, fmt.Errorf("kafka: Fetch: no metadata for topic %q", r.topic)
	}
	for _, p := range r.partitions {
		tp, ok := t.Partitions[p.partition]
		if !ok {
			return leader, fmt.Errorf("kafka: Fetch: no metadata for topic %q partition %d", r.topic, p.partition)
		}
		b, ok := cluster.Brokers[tp.Leader]
		switch {
		case !ok:
			return leader, fmt.Errorf("kafka: Fetch: topic %q partition %d has no leader", r.topic, p.partition)
		case leader.ID < 0:
			leader = b
		case b.ID != leader.ID:
			return leader, fmt.Errorf("kafka: Fetch: partitions of topic %q have different leaders", r.topic)
		}
	}
	return leader, nil
}

// Required picks the request's version from those the connection
// negotiated; it always asks for RawExchange.
func (r *fetchRequest) Required(versions map[protocol.ApiKey]int16) bool {
	r.version = min(versions[protocol.Fetch], maxFetchVersion)
	return true
}

// RawExchange writes the request to the connection and reads its
// response.
func (r *fetchRequest) RawExchange(rw io.ReadWriter) (protocol.Message, error) {
	if r.version < minFetchVersion {
		return nil, fmt.Errorf("kafka: the broker speaks Fetch up to v%d; the driver needs v%d (Kafka 0.11 or later)", r.version, minFetchVersion)
	}
	r.corr++
	if _, err := rw.Write(r.encode()); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(rw, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 4 {
		return nil, fmt.Errorf("kafka: Fetch: response of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(rw, buf); err != nil {
		return nil, err
	}
	return r.decode(buf)
}

// encode writes the request with its size and header (v1: API key,
// version, correlation ID, client ID) into r.out.
func (r *fetchRequest) encode() []byte {
	b := r.out[:0]
	b = append(b, 0, 0, 0, 0) // size, set below
	b = binary.BigEndian.AppendUint16(b, uint16(protocol.Fetch))
	b = binary.BigEndian.AppendUint16(b, uint16(r.version))
	b = binary.BigEndian.AppendUint32(b, uint32(r.corr))
	b = appendString(b, r.clientID)
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // replica ID -1: a consumer
	b = binary.BigEndian.AppendUint32(b, uint32(r.maxWait))
	b = binary.BigEndian.AppendUint32(b, 1) // min bytes
	b = binary.BigEndian.AppendUint32(b, uint32(r.maxBytes))
	b = append(b, byte(r.isolation))
	if r.version >= 7 {
		b = binary.BigEndian.AppendUint32(b, 0)          // session ID: none
		b = binary.BigEndian.AppendUint32(b, 0xffffffff) // session epoch -1: a full, sessionless fetch
	}
	b = binary.BigEndian.AppendUint32(b, 1) // one topic
	b = appendString(b, r.topic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.partitions)))
	for _, p := range r.partitions {
		b = binary.BigEndian.AppendUint32(b, uint32(p.partition))
		if r.version >= 9 {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff) // current leader epoch: unknown
		}
		b = binary.BigEndian.AppendUint64(b, uint64(p.offset))
		if r.version >= 5 {
			b = binary.BigEndian.AppendUint64(b, 0xffffffffffffffff) // log start offset: a consumer's -1
		}
		b = binary.BigEndian.AppendUint32(b, uint32(r.maxBytes))
	}
	if r.version >= 7 {
		b = binary.BigEndian.AppendUint32(b, 0) // no forgotten topics
	}
	if r.version >= 11 {
		b = appendString(b, "") // rack ID
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	r.out = b
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// errShortResponse reports a response that ends inside a field.
var errShortResponse = errors.New("kafka: Fetch: response ends early")

// decode reads a response of the request's version from buf (the bytes
// after the size). The records of its partitions point into buf.
func (r *fetchRequest) decode(buf []byte) (*fetchResponse, error) {
	d := wire{b: buf}
	if corr := d.int32(); corr != r.corr {
		return nil, fmt.Errorf("kafka: Fetch: response to request %d, want %d", corr, r.corr)
	}
	d.int32() // throttle time
	res := &fetchResponse{}
	if r.version >= 7 {
		res.errorCode = d.int16()
		d.int32() // session ID
	}
	for range d.count() {
		topic := d.string()
		for range d.count() {
			p := fetchedPartition{
				partition:     d.int32(),
				errorCode:     d.int16(),
				highWatermark: d.int64(),
			}
			d.int64() // last stable offset
			if r.version >= 5 {
				d.int64() // log start offset
			}
			if n := d.count(); n > 0 {
				p.aborted = make([]abortedTxn, 0, n)
				for range n {
					p.aborted = append(p.aborted, abortedTxn{producerID: d.int64(), firstOffset: d.int64()})
				}
			}
			if r.version >= 11 {
				d.int32() // preferred read replica
			}
			p.records = d.bytes()
			if topic == r.topic {
				res.partitions = append(res.partitions, p)
			}
		}
	}
	if d.short {
		return nil, errShortResponse
	}
	return res, nil
}

// wire reads big-endian Kafka fields from b; past its end it reads zeros
// and sets short.
type wire struct {
	b     []byte
	short bool
}

func (w *wire) take(n int) []byte {
	if n < 0 || len(w.b) < n {
		w.short, w.b = true, nil
		return nil
	}
	v := w.b[:n:n]
	w.b = w.b[n:]
	return v
}

func (w *wire) int16() int16 {
	if b := w.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (w *wire) int32() int32 {
	if b := w.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (w *wire) int64() int64 {
	if b := w.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// count reads an array length; a null array counts 0. A length larger
// than the bytes left (each element takes at least one) ends the read.
func (w *wire) count() int {
	n := w.int32()
	if n < 0 {
		return 0
	}
	if int(n) > len(w.b) {
		w.short, w.b = true, nil
		return 0
	}
	return int(n)
}

func (w *wire) string() string {
	n := w.int16()
	if n < 0 {
		return ""
	}
	return string(w.take(int(n)))
}

// bytes reads nullable bytes (nil for null) without copying them.
func (w *wire) bytes() []byte {
	n := w.int32()
	if n < 0 {
		return nil
	}
	return w.take(int(n))
}
