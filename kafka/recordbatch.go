package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/segmentio/kafka-go/compress"
)

// Record batch (message format v2) layout: the fixed header fields up to
// the records, and the bits of its attributes the fetcher reads.
const (
	batchHeaderLen    = 61 // base offset through record count
	batchMagicAt      = 16 // the magic byte, at the same place in every format
	batchCRCAt        = 17 // CRC-32C of everything after it
	batchAttrsAt      = 21
	batchLastDeltaAt  = 23
	attrCompression   = 0x07
	attrLogAppend     = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// nextBatch splits the first record batch (in any format: they all start
// with the base offset and the length of the rest) off data. ok is false
// when data holds no complete batch: a broker cuts the last batch of a
// response at the size limit.
func nextBatch(data []byte) (raw, rest []byte, ok bool) {
	if len(data) < 12 {
		return nil, nil, false
	}
	n := int64(int32(binary.BigEndian.Uint32(data[8:12])))
	if n <= batchMagicAt-12 || int64(len(data)) < 12+n {
		return nil, nil, false
	}
	return data[: 12+n : 12+n], data[12+n:], true
}

// recordBatch is a record batch of message format v2 being read.
type recordBatch struct {
	base          int64
	lastDelta     int32 // offset of the batch's last record, less base
	attributes    int16
	firstTime     int64 // milliseconds
	maxTime       int64
	producerID    int64
	records       []byte // the records not read yet, decompressed
	remaining     int32  // their count
	errCorruption error  // set when a record does not parse
}

// parseBatch checks raw, a whole batch of format v2, against its CRC and
// decompresses its records if needed.
func parseBatch(raw []byte) (recordBatch, error) {
	if len(raw) < batchHeaderLen {
		return recordBatch{}, fmt.Errorf("kafka: record batch of %d bytes", len(raw))
	}
	if crc := binary.BigEndian.Uint32(raw[batchCRCAt:]); crc != crc32.Checksum(raw[batchAttrsAt:], castagnoli) {
		return recordBatch{}, errors.New("kafka: record batch fails its CRC check")
	}
	b := recordBatch{
		base:       int64(binary.BigEndian.Uint64(raw[0:])),
		attributes: int16(binary.BigEndian.Uint16(raw[21:])),
		lastDelta:  int32(binary.BigEndian.Uint32(raw[batchLastDeltaAt:])),
		firstTime:  int64(binary.BigEndian.Uint64(raw[27:])),
		maxTime:    int64(binary.BigEndian.Uint64(raw[35:])),
		producerID: int64(binary.BigEndian.Uint64(raw[43:])),
		remaining:  int32(binary.BigEndian.Uint32(raw[57:])),
		records:    raw[batchHeaderLen:],
	}
	if c := compress.Compression(b.attributes & attrCompression); c != 0 {
		codec := c.Codec()
		if codec == nil {
			return recordBatch{}, fmt.Errorf("kafka: record batch compressed with unknown codec %d", c)
		}
		r := codec.NewReader(bytes.NewReader(b.records))
		out, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return recordBatch{}, fmt.Errorf("kafka: decompress a record batch (%s): %w", c, err)
		}
		b.records = out
	}
	return b, nil
}

func (b *recordBatch) control() bool       { return b.attributes&attrControl != 0 }
func (b *recordBatch) transactional() bool { return b.attributes&attrTransactional != 0 }

// rawRecord is one record of a batch; its slices point into the batch.
type rawRecord struct {
	offset  int64
	time    time.Time
	key     []byte // nil: a null key
	value   []byte // nil: a null value
	headers []byte // the encoded headers
	nheader int
}

// next reads the next record; ok is false at the end of the batch or
// when a record does not parse (then b.errCorruption says why).
func (b *recordBatch) next() (r rawRecord, ok bool) {
	if b.remaining <= 0 || len(b.records) == 0 {
		return rawRecord{}, false
	}
	b.remaining--
	v := varints{b: b.records}
	n := v.varint()
	body := v.take(n)
	if v.bad {
		b.errCorruption = errors.New("kafka: record length past the end of its batch")
		return rawRecord{}, false
	}
	b.records = v.b
	v = varints{b: body}
	v.take(1) // attributes: none defined
	ts := v.varint()
	r.offset = b.base + v.varint()
	if b.attributes&attrLogAppend != 0 {
		r.time = time.UnixMilli(b.maxTime)
	} else {
		r.time = time.UnixMilli(b.firstTime + ts)
	}
	r.key = v.nullable()
	r.value = v.nullable()
	r.nheader = int(v.varint())
	r.headers = v.b
	if v.bad || r.nheader < 0 {
		b.errCorruption = errors.New("kafka: record does not parse")
		return rawRecord{}, false
	}
	return r, true
}

// header reads the next of the record's headers from its encoding h,
// returning the rest.
func header(h []byte) (key, value, rest []byte, err error) {
	v := varints{b: h}
	key = v.take(v.varint())
	value = v.nullable()
	if v.bad {
		return nil, nil, nil, errors.New("kafka: record header does not parse")
	}
	return key, value, v.b, nil
}

// varints reads the zigzag varints and byte fields of records; past the
// end it reads zeros and sets bad.
type varints struct {
	b   []byte
	bad bool
}

func (v *varints) varint() int64 {
	x, n := binary.Varint(v.b)
	if n <= 0 {
		v.bad, v.b = true, nil
		return 0
	}
	v.b = v.b[n:]
	return x
}

func (v *varints) take(n int64) []byte {
	if n < 0 || int64(len(v.b)) < n {
		v.bad, v.b = true, nil
		return nil
	}
	out := v.b[:n:n]
	v.b = v.b[n:]
	return out
}

// nullable reads a length (-1: null, giving nil) and that many bytes.
func (v *varints) nullable() []byte {
	n := v.varint()
	if n < 0 {
		return nil
	}
	if n == 0 && !v.bad {
		return []byte{}
	}
	return v.take(n)
}
