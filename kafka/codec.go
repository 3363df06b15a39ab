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
