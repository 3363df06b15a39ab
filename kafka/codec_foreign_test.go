package kafka

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/seedmq/mq"
)

// Issue 19: a record from a producer that does not use mq (Java's
// LongSerializer key, a binary header value) is delivered with a stable
// ID, and republished through mq it round-trips byte-exact.
func TestFromKafkaForeign(t *testing.T) {
	ts := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	km := kafka.Message{
		Topic: "orders", Partition: 2, Offset: 1234,
		Key:   []byte{0, 0, 0, 0, 0, 0, 0, 0xc8},
		Value: []byte{0xff, 0},
		Time:  ts,
		Headers: []kafka.Header{
			{Key: "bin", Value: []byte{0xfe, 0x00}},
			{Key: "dup", Value: []byte("first")},
			{Key: "dup", Value: []byte("last")},
			{Key: "null", Value: nil},
			{Key: "", Value: []byte("empty key")},
			{Key: "mq-other", Value: []byte("reserved")},
		},
	}
	var m mq.Message
	fromKafka(&m, km, nil)
	if m.ID != "kafka:orders:2:1234" {
		t.Errorf("ID: got %q, want kafka:orders:2:1234", m.ID)
	}
	if m.Key != "\x00\x00\x00\x00\x00\x00\x00\xc8" || string(m.Body) != "\xff\x00" || !m.PublishTime.Equal(ts) {
		t.Errorf("got Key %q Body %q PublishTime %v, want the record's", m.Key, m.Body, m.PublishTime)
	}
	want := map[string]string{"bin": "\xfe\x00", "dup": "last", "null": "", "": "empty key"}
	if len(m.Header) != len(want) {
		t.Errorf("got headers %q, want %q", m.Header, want)
	}
	for k, v := range want {
		if got, ok := m.Header[k]; !ok || got != v {
			t.Errorf("header %q: got %q (present %v), want %q", k, got, ok, v)
		}
	}

	var again mq.Message
	fromKafka(&again, km, nil)
	if again.ID != m.ID {
		t.Errorf("redelivery ID: got %q, want %q", again.ID, m.ID)
	}

	// Republished unchanged through mq: the same ID, Key, Body, Header.
	out := republish(t, &m)
	out.Topic, out.Partition, out.Offset = "copy", 0, 7
	var back mq.Message
	fromKafka(&back, out, nil)
	if back.ID != m.ID || back.Key != m.Key || string(back.Body) != string(m.Body) || len(back.Header) != len(m.Header) {
		t.Fatalf("republished: got %+v, want %+v", back, m)
	}
	for k, v := range m.Header {
		if back.Header[k] != v {
			t.Errorf("republished header %q: got %q, want %q", k, back.Header[k], v)
		}
	}
}

// republish encodes m as Publish does (newPublishCall and the record
// batch encoder) and decodes the batch back into the record a consumer
// would fetch.
func republish(t *testing.T, m *mq.Message) kafka.Message {
	t.Helper()
	call := newPublishCall(context.Background(), []*mq.Message{m})
	var rr recordReader
	rr.reset([]*record{&call.recs[0]})
	var buf bytes.Buffer
	rs := protocol.RecordSet{Version: 2, Records: &rr}
	if _, err := rs.WriteTo(&buf); err != nil {
		t.Fatalf("encode: %v", err)
	}
	var back protocol.RecordSet
	if _, err := back.ReadFrom(&buf); err != nil {
		t.Fatalf("decode: %v", err)
	}
	r, err := back.Records.ReadRecord()
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	km := kafka.Message{Headers: r.Headers}
	if r.Key != nil {
		km.Key, _ = protocol.ReadAll(r.Key)
	}
	if km.Value, err = protocol.ReadAll(r.Value); err != nil {
		t.Fatalf("decode value: %v", err)
	}
	return km
}
