package sqs

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
)

// roundTrip encodes m and decodes it as SQS would deliver it.
func roundTrip(t *testing.T, m *mq.Message) (*mq.Message, encoded) {
	t.Helper()
	var e encoded
	e.encode(m)
	if len(e.attrs) > maxAttributes {
		t.Fatalf("encode made %d attributes, SQS allows %d", len(e.attrs), maxAttributes)
	}
	for name, v := range e.attrs {
		if v.StringValue != nil && (!isSQSText(*v.StringValue) || *v.StringValue == "") {
			t.Fatalf("attribute %q has a value SQS rejects: %q", name, *v.StringValue)
		}
		if !isAttrName(name) {
			t.Fatalf("attribute name %q is not valid for SQS", name)
		}
	}
	if !isSQSText(e.body) || e.body == "" {
		t.Fatalf("body %q is not valid SQS text", e.body)
	}
	sm := &types.Message{Body: aws.String(e.body), MessageAttributes: e.attrs, MessageId: aws.String("sqs-id"),
		Attributes: map[string]string{"ApproximateReceiveCount": "3"}}
	var got mq.Message
	if err := decode(sm, &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &got, e
}

func TestCodecRoundTrip(t *testing.T) {
	many := map[string]string{}
	for i := range 40 {
		many[fmt.Sprintf("h%02d", i)] = strings.Repeat("v", i+1)
	}
	many["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	many["tracestate"] = "k=v"
	tests := []struct {
		name string
		msg  mq.Message
	}{
		{"text", mq.Message{ID: "id-1", Key: "k", Body: []byte("hello"), Header: map[string]string{"a": "b"}}},
		{"empty body", mq.Message{ID: "id-2", Body: nil}},
		{"binary body", mq.Message{ID: "id-3", Body: []byte{0, 1, 2, 0xff, 0xfe}}},
		{"invalid UTF-8", mq.Message{ID: "id-4", Body: []byte("a\xc3\x28b")}},
		{"noncharacter", mq.Message{ID: "id-5", Body: []byte("a\uFFFEb")}},
		{"control in header", mq.Message{ID: "id-6", Header: map[string]string{"x": "a\x01b", "e": "", "Content Type": "text/plain", "AWS.x": "y", "ünï": "cödé"}}},
		{"control in ID and key", mq.Message{ID: "i\x02d", Key: "k\x03", Body: []byte("b")}},
		{"many headers", mq.Message{ID: "id-7", Key: "key", Body: []byte("x"), Header: many}},
		{"exactly ten fit", mq.Message{ID: "id-8", Header: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := roundTrip(t, &tt.msg)
			if got.ID != tt.msg.ID {
				t.Errorf("ID: got %q, want %q", got.ID, tt.msg.ID)
			}
			if got.Key != tt.msg.Key {
				t.Errorf("Key: got %q, want %q", got.Key, tt.msg.Key)
			}
			if !bytes.Equal(got.Body, tt.msg.Body) {
				t.Errorf("Body: got %q, want %q", got.Body, tt.msg.Body)
			}
			if !maps.Equal(got.Header, tt.msg.Header) {
				t.Errorf("Header: got %v, want %v", got.Header, tt.msg.Header)
			}
			if got.Attempt != 3 {
				t.Errorf("Attempt: got %d, want 3 (ApproximateReceiveCount)", got.Attempt)
			}
		})
	}
}

func TestCodecTraceHeadersStayAttributes(t *testing.T) {
	h := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=b"}
	for i := range 20 {
		h[fmt.Sprintf("a%02d", i)] = "v"
	}
	_, e := roundTrip(t, &mq.Message{ID: "id", Key: "k", Body: []byte{0}, Header: h})
	for _, name := range []string{"traceparent", "tracestate"} {
		if _, ok := e.attrs[name]; !ok {
			t.Errorf("got attributes %v, want %q among them", attrNames(e.attrs), name)
		}
	}
	if _, ok := e.attrs[attrPacked]; !ok {
		t.Errorf("got attributes %v, want %q for the overflow", attrNames(e.attrs), attrPacked)
	}
}

func TestCodecSizeBound(t *testing.T) {
	// The worst case the reserve must cover: MaxHeaders one-byte headers
	// that all go to the packed attribute, plus every mq attribute.
	h := make(map[string]string, MaxHeaders)
	for i := range MaxHeaders {
		h[fmt.Sprintf("\x01%03d", i)] = ""
	}
	m := &mq.Message{ID: "\x01" + strings.Repeat("i", 100), Key: "\x01k", Body: []byte{0xff}, Header: h}
	var e encoded
	e.encode(m)
	if over := e.size - m.Size(); over > headerReserve {
		t.Errorf("encoding overhead: got %d bytes, want at most the reserve of %d", over, headerReserve)
	}
}

func TestCodecForeignMessage(t *testing.T) {
	sm := &types.Message{
		Body:      aws.String(`{"order":1}`),
		MessageId: aws.String("0b8f-sqs"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"source": {DataType: aws.String("String"), StringValue: aws.String("billing")},
			"count":  {DataType: aws.String("Number"), StringValue: aws.String("7")},
			"blob":   {DataType: aws.String("Binary"), BinaryValue: []byte{1}},
		},
		Attributes: map[string]string{"MessageGroupId": "g1", "SentTimestamp": "1700000000000"},
	}
	var m mq.Message
	if err := decode(sm, &m); err != nil {
		t.Fatal(err)
	}
	// Binary attributes are headers too, byte for byte (issue 19).
	want := map[string]string{"source": "billing", "count": "7", "blob": "\x01"}
	if m.ID != "0b8f-sqs" || m.Key != "g1" || string(m.Body) != `{"order":1}` || !maps.Equal(m.Header, want) || m.Attempt != 1 || m.PublishTime.UnixMilli() != 1700000000000 {
		t.Errorf("got ID %q Key %q Body %q Header %v Attempt %d PublishTime %v; want 0b8f-sqs, g1, the body, %v, 1, 1700000000000 ms",
			m.ID, m.Key, m.Body, m.Header, m.Attempt, m.PublishTime, want)
	}
}

func TestQueueNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"Orders_v2-eu", true},
		{"orders.fifo", true},
		{strings.Repeat("a", 80), true},
		{strings.Repeat("a", 76) + ".fifo", false},
		{strings.Repeat("a", 75) + ".fifo", true},
		{strings.Repeat("a", 81), false},
		{"orders.v2", false},
		{"orders!", false},
		{".fifo", false},
		{"ördérs", false},
	}
	for _, tt := range tests {
		err := checkQueueName(tt.name, "topic")
		if (err == nil) != tt.ok {
			t.Errorf("checkQueueName(%q): got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestFIFOToken(t *testing.T) {
	if got := fifoToken("order-42"); got != "order-42" {
		t.Errorf("fifoToken(order-42): got %q, want it unchanged", got)
	}
	for _, s := range []string{"ünï", strings.Repeat("x", 129), "a b"} {
		got := fifoToken(s)
		if len(got) != 64 || got == fifoToken(s+"!") {
			t.Errorf("fifoToken(%q): got %q, want a distinct 64-character hash", s, got)
		}
	}
}

func attrNames(m map[string]types.MessageAttributeValue) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return s
}

// TestEncodeAllocs: encoding a message with a text body allocates only
// the attribute map and the body string; the ID and Key attributes point
// into the encoded message rather than to strings of their own.
func TestEncodeAllocs(t *testing.T) {
	m := &mq.Message{ID: mq.NewID(), Key: "k", Body: []byte("hello")}
	var e encoded
	allocs := testing.AllocsPerRun(100, func() { e.encode(m) })
	if allocs > 3 {
		t.Errorf("allocations per encode: got %v, want at most 3 (the map, its entries and the body)", allocs)
	}
}

// TestCodecMalformedPackedIsDeterministic pins issue 20: an mq-h
// attribute another producer got wrong used to be decoded in part, in
// map order: Attempt 0, ID empty in some decodes, the placeholder body
// delivered in others. Now the delivery facts come from SQS's system
// attributes, the bad attribute is ignored as a whole, and every decode
// gives the same message.
func TestCodecMalformedPackedIsDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bad    []byte
		idAttr string // mq-id attribute, "" for none
		wantID string
	}{
		{"truncated pair, ID packed", append(packPairs([]string{attrID, "packed-id", "h", "v"}), 5, 'x'), "", "sqs-msg-id"},
		{"odd pair count, ID attribute", packPairs([]string{"k"}), "attr-id", "attr-id"},
		{"length past the end", []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 'a'}, "", "sqs-msg-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attrs := map[string]types.MessageAttributeValue{
				attrPacked: {DataType: aws.String("Binary"), BinaryValue: tc.bad},
				attrBody:   {DataType: aws.String("Binary"), BinaryValue: []byte{0xff, 0}},
				"source":   {DataType: aws.String("String"), StringValue: aws.String("billing")},
				"a":        {DataType: aws.String("String"), StringValue: aws.String("1")},
				"b":        {DataType: aws.String("Number"), StringValue: aws.String("2")},
			}
			if tc.idAttr != "" {
				attrs[attrID] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(tc.idAttr)}
			}
			sm := &types.Message{
				Body:              aws.String(bodyPlaceholder),
				MessageId:         aws.String("sqs-msg-id"),
				MessageAttributes: attrs,
				Attributes:        map[string]string{"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000"},
			}
			wantHeader := map[string]string{"source": "billing", "a": "1", "b": "2"}
			for i := range 200 {
				var m mq.Message
				if err := decode(sm, &m); err == nil {
					t.Fatalf("decode %d: got nil error, want errBadPack to log", i)
				}
				if m.Attempt != 3 || m.ID != tc.wantID || !bytes.Equal(m.Body, []byte{0xff, 0}) || m.PublishTime.UnixMilli() != 1700000000000 || !maps.Equal(m.Header, wantHeader) {
					t.Fatalf("decode %d: got Attempt %d ID %q Body %q PublishTime %v Header %v; want 3, %q, the binary body, 1700000000000 ms, %v",
						i, m.Attempt, m.ID, m.Body, m.PublishTime, m.Header, tc.wantID, wantHeader)
				}
			}
		})
	}
}

// TestCodecHeaderNeverNil: a message without attributes gets an empty,
// non-nil Header.
func TestCodecHeaderNeverNil(t *testing.T) {
	var m mq.Message
	if err := decode(&types.Message{Body: aws.String("x"), MessageId: aws.String("id")}, &m); err != nil || m.Header == nil {
		t.Fatalf("decode: got Header %v, error %v; want an empty map, nil", m.Header, err)
	}
}

// TestQueueNameErrorShowsTheCharacter pins issue 20: the error printed a
// byte of a multi-byte character as a rune ('Ã' for 'ó').
func TestQueueNameErrorShowsTheCharacter(t *testing.T) {
	err := checkQueueName("pedidos-ó", "topic")
	if err == nil || !strings.Contains(err.Error(), "'ó'") || strings.Contains(err.Error(), "Ã") {
		t.Fatalf("checkQueueName(%q): got %v, want an error that shows 'ó'", "pedidos-ó", err)
	}
}
