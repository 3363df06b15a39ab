package kafka

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// headerID is the Kafka header carrying Message.ID. Headers starting with
// mq.ReservedHeaderPrefix are the driver's and are removed on delivery.
const headerID = mq.ReservedHeaderPrefix + "id"

// toKafka converts m for the writer, appending its headers to hdrs (the
// ID header first). The writer only reads Key, Value and header values, so
// m's bytes and strings are shared, not copied (see bytesOf).
func toKafka(topic string, m *mq.Message, hdrs []kafka.Header) kafka.Message {
	km := kafka.Message{
		Topic: topic,
		Value: m.Body,
	}
	if m.Key != "" {
		km.Key = bytesOf(m.Key)
	}
	hdrs = append(hdrs, kafka.Header{Key: headerID, Value: bytesOf(m.ID)})
	for k, v := range m.Header {
		hdrs = append(hdrs, kafka.Header{Key: k, Value: bytesOf(v)})
	}
	km.Headers = hdrs
	return km
}

// bytesOf returns the bytes of s without copying them, for fields the
// writer only reads: nothing may write to the result. An empty s gives an
// empty, non-nil slice, which Kafka records as an empty value, not null.
func bytesOf(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// fromKafka fills m from the fetched record km: Key, Body, ID (from the
// headerID header), the other headers except the driver's reserved ones,
// PublishTime, and km itself as the native delivery for Message.As. Body
// and Header are never nil. Topic, Group and Attempt are the caller's.
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
	driver.SetNative(m, km)
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

// recordBytes bounds from above the bytes km takes in a record batch of
// its own: the batch header, the record's fixed fields with varints at
// their widest for these sizes, key, value and headers.
func recordBytes(km *kafka.Message) int {
	n := batchOverhead + recordOverhead + len(km.Key) + len(km.Value)
	for _, h := range km.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}
