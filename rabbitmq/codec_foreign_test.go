package rabbitmq

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Issue 19: a message from another AMQP client keeps every header (tables
// and arrays rendered as JSON, not dropped), gets its routing key as Key
// and an ID that is the same on every delivery, redelivery copies included.
func TestDecodeForeign(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := amqp.Delivery{
		RoutingKey: "\x00\x00\x00\x00\x00\x00\x00\xc8",
		Timestamp:  ts,
		Body:       []byte{0xff, 0},
		Headers: amqp.Table{
			"text":    "plain",
			"bytes":   []byte{0xfe, 0x00},
			"int":     int32(-7),
			"bool":    true,
			"float":   1.5,
			"void":    nil,
			"dec":     amqp.Decimal{Scale: 2, Value: 12345},
			"time":    ts,
			"table":   amqp.Table{"b": int64(2), "a": "x", "n": amqp.Table{"t": []any{"s", int8(1), false}}},
			"array":   []any{"x", int64(3), nil, []byte("raw")},
			"x-death": []any{amqp.Table{"count": int64(1)}},
		},
	}
	m := decode(&d, "t", "g", "t.g", d)
	want := map[string]string{
		"text":  "plain",
		"bytes": "\xfe\x00",
		"int":   "-7",
		"bool":  "true",
		"float": "1.5",
		"void":  "",
		"dec":   "12345e-2",
		"time":  "2026-01-02T03:04:05Z",
		"table": `{"a":"x","b":2,"n":{"t":["s",1,false]}}`,
		"array": `["x",3,null,"raw"]`,
	}
	if len(m.Header) != len(want) {
		t.Errorf("got %d headers %q, want %d", len(m.Header), m.Header, len(want))
	}
	for k, v := range want {
		if m.Header[k] != v {
			t.Errorf("header %q: got %q, want %q", k, m.Header[k], v)
		}
	}
	if m.Key != d.RoutingKey {
		t.Errorf("Key: got %q, want the routing key %q", m.Key, d.RoutingKey)
	}
	if !strings.HasPrefix(m.ID, foreignIDPrefix) || len(m.ID) != len(foreignIDPrefix)+32 {
		t.Errorf("ID: got %q, want %s and 32 hex digits", m.ID, foreignIDPrefix)
	}
	if !m.PublishTime.Equal(ts) {
		t.Errorf("PublishTime: got %v, want the timestamp property %v", m.PublishTime, ts)
	}

	// A requeue by the broker (quorum queue delivery count) keeps the ID.
	again := d
	again.Redelivered = true
	again.Headers = amqp.Table{"x-delivery-count": int64(1)}
	for k, v := range d.Headers {
		again.Headers[k] = v
	}
	if m2 := decode(&again, "t", "g", "t.g", again); m2.ID != m.ID || m2.Attempt != 2 {
		t.Errorf("requeued: got ID %q attempt %d, want %q 2", m2.ID, m2.Attempt, m.ID)
	}
	// A driver redelivery copy travels through a delay queue, which
	// changes the routing key; Key and ID stay.
	p := redeliveryCopy(&d, "t.g", 1)
	copyD := amqp.Delivery{RoutingKey: "t.g", Headers: p.Headers, Body: p.Body, Timestamp: p.Timestamp}
	if m3 := decode(&copyD, "t", "g", "t.g", copyD); m3.ID != m.ID || m3.Key != m.Key || m3.Attempt != 2 || m3.Header["table"] != want["table"] {
		t.Errorf("redelivery copy: got ID %q Key %q attempt %d table %q, want %q %q 2 %q", m3.ID, m3.Key, m3.Attempt, m3.Header["table"], m.ID, m.Key, want["table"])
	}

	// Another message differing only in body has another ID.
	other := d
	other.Body = []byte("other")
	if m4 := decode(&other, "t", "g", "t.g", other); m4.ID == m.ID {
		t.Errorf("two different messages share ID %q", m.ID)
	}
	// message_id wins when set; an empty Header is not nil.
	withID := amqp.Delivery{MessageId: "\xffid", RoutingKey: "rk"}
	if m5 := decode(&withID, "t", "g", "t.g", withID); m5.ID != "\xffid" || m5.Key != "rk" || m5.Header == nil {
		t.Errorf("with message_id: got ID %q Key %q Header %v, want \\xffid, rk, non-nil", m5.ID, m5.Key, m5.Header)
	}
}

// Issue 19: a delivered foreign message, republished through mq, decodes
// to the same ID, Key, Body and Header.
func TestRepublishForeign(t *testing.T) {
	d := amqp.Delivery{RoutingKey: "\x00\xc8", Body: []byte{1}, Headers: amqp.Table{"t": amqp.Table{"a": int64(1)}, "b": []byte{0xff}}}
	m := decode(&d, "t", "g", "t.g", d)
	p := encode(m)
	d2 := amqp.Delivery{MessageId: p.MessageId, RoutingKey: m.Key, Headers: p.Headers, Body: p.Body}
	m2 := decode(&d2, "t", "g", "t.g", d2)
	if m2.ID != m.ID || m2.Key != m.Key || string(m2.Body) != string(m.Body) || len(m2.Header) != len(m.Header) {
		t.Fatalf("republished: got %+v, want %+v", m2, m)
	}
	for k, v := range m.Header {
		if m2.Header[k] != v {
			t.Errorf("header %q: got %q, want %q", k, m2.Header[k], v)
		}
	}
}
