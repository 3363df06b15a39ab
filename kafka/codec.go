package kafka

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
)

// headerID is the Kafka header carrying Message.ID. Headers starting with
// mq.ReservedHeaderPrefix are the driver's and are removed on delivery.
const headerID = mq.ReservedHeaderPrefix + "id"

// bytesOf returns the bytes of s without copying them, for fields the
// record encoder only reads: nothing may write to the result. An empty s gives an
// empty, non-nil slice, which Kafka records as an empty value, not null.
func bytesOf(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// fromKafka fills m from the fetched record km: Key, Body, ID (from the
// headerID header), the other headers except the driver's reserved ones,
// and PublishTime; the caller sets the native delivery for Message.As.
// Body and Header are never nil. Topic, Group and Attempt are the caller's.
// A record without the headerID header (from a producer that does not use
// mq) gets foreignID as its ID. A header key that repeats gives the last
// value; null and empty values and keys both give "". See
// Interoperability in the package documentation.
//
// The strings it makes (Key, ID, header values) share one piece of
// memory from a (nil: a piece of their own), which nothing writes to
// afterwards; Body is km.Value.
func fromKafka(m *mq.Message, km kafka.Message, a *arena) {
	*m = mq.Message{
		Body:        km.Value,
		PublishTime: km.Time,
	}
	n, headers, id := len(km.Key), 0, -1
	for i, h := range km.Headers {
		switch {
		case h.Key == headerID:
			id = i
		case strings.HasPrefix(h.Key, mq.ReservedHeaderPrefix):
			continue
		default:
			headers++
		}
		n += len(h.Value)
	}
	var buf []byte
	if n > 0 {
		buf = a.alloc(n)
	}
	m.Key, buf = carve(buf, km.Key)
	if id >= 0 {
		m.ID, buf = carve(buf, km.Headers[id].Value)
	} else {
		m.ID = foreignID(km.Topic, km.Partition, km.Offset)
	}
	m.Header = make(map[string]string, headers)
	if headers > 0 {
		for _, h := range km.Headers {
			if h.Key == headerID || strings.HasPrefix(h.Key, mq.ReservedHeaderPrefix) {
				continue
			}
			m.Header[h.Key], buf = carve(buf, h.Value)
		}
	}
	if m.Body == nil {
		m.Body = []byte{}
	}
}

// carve copies b to the start of buf and returns it as a string, with the
// rest of buf. buf must have room for b; the string's bytes must never be
// written again.
func carve(buf, b []byte) (string, []byte) {
	if len(b) == 0 {
		return "", buf
	}
	n := copy(buf, b)
	return unsafe.String(&buf[0], n), buf[n:]
}

// foreignID is the ID of a record published without the headerID header:
// "kafka:<topic>:<partition>:<offset>", the record's identity in Kafka,
// the same on every delivery of it to every group. (Topic names cannot
// contain ':'.)
func foreignID(topic string, partition int, offset int64) string {
	b := make([]byte, 0, len("kafka:")+len(topic)+24)
	b = append(b, "kafka:"...)
	b = append(b, topic...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, offset, 10)
	return string(b)
}
