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
func fromKafka(m *mq.Message, km kafka.Message) {
	*m = mq.Message{
		Key:         string(km.Key),
		Body:        km.Value,
		PublishTime: km.Time,
	}
	hasID := false
	for _, h := range km.Headers {
		if h.Key == headerID {
			m.ID, hasID = string(h.Value), true
			continue
		}
		if strings.HasPrefix(h.Key, mq.ReservedHeaderPrefix) {
			continue
		}
		if m.Header == nil {
			m.Header = make(map[string]string, len(km.Headers))
		}
		m.Header[h.Key] = string(h.Value)
	}
	if !hasID {
		m.ID = foreignID(km.Topic, km.Partition, km.Offset)
	}
	if m.Header == nil {
		m.Header = map[string]string{}
	}
	if m.Body == nil {
		m.Body = []byte{}
	}
	driver.SetNative(m, km)
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
