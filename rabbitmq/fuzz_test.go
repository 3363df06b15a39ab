package rabbitmq

import (
	"bytes"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// FuzzCodecRoundTrip checks the publish-side contract of the header
// codec: a message that Publish's checks accept (driver.PrepareMessages
// with the driver's Capabilities, then checkMessages) encodes into
// fields AMQP can carry (short strings at most 255 bytes: message-id,
// routing key, header keys) and decodes back to the same ID, Key, Body
// and Header. Issue 20: a Key over 255 bytes passed the checks and
// broke the connection.
func FuzzCodecRoundTrip(f *testing.F) {
	f.Add("id-1", "k", []byte("body"), "a", "ü", "b", "")
	f.Add("", strings.Repeat("k", 256), []byte{0, 0xff}, "", "", "x", "y")
	f.Add(strings.Repeat("i", 300), "", []byte{}, strings.Repeat("h", 256), "v", "mq-key", "x")
	f.Add("id", "key", []byte(nil), "x-death", "v", "x-delivery-count", "1")
	caps := (&Broker{s: &settings{Options: Options{MaxMessageBytes: DefaultMaxMessageBytes}}}).Capabilities()
	lim := driver.LimitsOf(caps)
	f.Fuzz(func(t *testing.T, id, key string, body []byte, k1, v1, k2, v2 string) {
		m := &mq.Message{ID: id, Key: key, Body: body, Header: map[string]string{}}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if kv[0] != "" {
				m.Header[kv[0]] = kv[1]
			}
		}
		in := m.Clone()
		msgs := []*mq.Message{m}
		if driver.PrepareMessages(msgs, lim) != nil || checkMessages(msgs) != nil {
			return // refused before sending: nothing reaches the wire
		}
		p := encode(m)
		if len(p.MessageId) > 255 || len(m.Key) > 255 {
			t.Fatalf("accepted message has a message-id of %d or routing key of %d bytes; AMQP short strings hold 255", len(p.MessageId), len(m.Key))
		}
		for k := range p.Headers {
			if len(k) > 255 {
				t.Fatalf("accepted message has a header key of %d bytes; AMQP short strings hold 255", len(k))
			}
		}
		if err := p.Headers.Validate(); err != nil {
			t.Fatalf("accepted message encodes to an invalid AMQP table: %v", err)
		}
		d := amqp.Delivery{MessageId: p.MessageId, Headers: p.Headers, Body: p.Body, RoutingKey: m.Key}
		out := decode(&d, "t", "g", "t.g", d)
		wantID := in.ID
		if wantID == "" {
			wantID = m.ID // filled by PrepareMessages
		}
		if out.ID != wantID || out.Key != in.Key || !bytes.Equal(out.Body, in.Body) || out.Attempt != 1 || out.Header == nil {
			t.Fatalf("round trip: got ID %q Key %q Body %q Attempt %d; want %q %q %q 1", out.ID, out.Key, out.Body, out.Attempt, wantID, in.Key, in.Body)
		}
		if len(out.Header) != len(in.Header) {
			t.Fatalf("round trip: got headers %q, want %q", out.Header, in.Header)
		}
		for k, v := range in.Header {
			if out.Header[k] != v {
				t.Fatalf("round trip: header %q got %q, want %q", k, out.Header[k], v)
			}
		}
	})
}

// FuzzDecodeForeign feeds decode deliveries whose headers another AMQP
// publisher set to anything: driver header names with values of every
// type and size, broker header names, arbitrary keys and values. decode
// must not panic, Attempt stays from 1 to 2*MaxAttempt+1 (issue 20: an
// mq-attempt of MaxInt64 made it negative), Header is never nil and never
// shows a driver or broker header.
func FuzzDecodeForeign(f *testing.F) {
	f.Add(int64(1<<63-1), int64(0), true, uint8(0), "t.g", []byte("k"), "hdr", []byte("v"))
	f.Add(int64(-1<<63), int64(-5), false, uint8(1), "other", []byte{0xff}, "mq-id", []byte(nil))
	f.Add(int64(3), int64(1<<63-1), true, uint8(2), "t.g", []byte(strings.Repeat("k", 300)), "x-death", []byte("x"))
	f.Add(int64(0), int64(0), false, uint8(3), "", []byte{}, "", []byte{})
	f.Fuzz(func(t *testing.T, attempt, count int64, redelivered bool, kind uint8, queue string, key []byte, hk string, hv []byte) {
		var v any
		switch kind % 9 {
		case 0:
			v = attempt
		case 1:
			v = uint64(attempt)
		case 2:
			v = int32(attempt)
		case 3:
			v = string(hv)
		case 4:
			v = hv
		case 5:
			v = float64(attempt)
		case 6:
			v = amqp.Table{"nested": attempt}
		case 7:
			v = time.Unix(attempt%(1<<40), 0)
		case 8:
			v = nil
		}
		h := amqp.Table{
			hdrAttempt:         v,
			hdrQueue:           queue,
			"x-delivery-count": count,
			hdrKey:             v,
			hdrID:              v,
		}
		if kind%2 == 0 {
			h[hdrAttempt] = attempt
			h[hdrKey] = string(key)
		}
		if hk != "" {
			h[hk] = v
		}
		d := amqp.Delivery{Headers: h, Redelivered: redelivered, MessageId: string(key), Body: hv}
		m := decode(&d, "t", "g", "t.g", d)
		if m.Attempt < 1 || m.Attempt > 2*MaxAttempt+1 {
			t.Fatalf("Attempt %d from mq-attempt %v, x-delivery-count %d: want 1 to %d", m.Attempt, h[hdrAttempt], count, 2*MaxAttempt+1)
		}
		if m.Header == nil {
			t.Fatal("Header is nil, want a map")
		}
		for k := range m.Header {
			if strings.HasPrefix(k, mq.ReservedHeaderPrefix) || isBrokerHeader(k) {
				t.Fatalf("Header shows the driver or broker header %q", k)
			}
		}
	})
}
