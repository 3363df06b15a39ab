package sqs

import (
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
)

// received turns an encoded message into what ReceiveMessage returns.
func received(e *encoded, id string) *types.Message {
	return &types.Message{Body: aws.String(e.body), MessageId: aws.String(id), MessageAttributes: e.attrs}
}

// Issue 19: a message with no attributes has a non-nil Header, and a
// header value that is not SQS text travels as a Binary attribute of its
// own name, so consumers that do not use mq see it too.
func TestCodecForeignRoundTrip(t *testing.T) {
	var m mq.Message
	if err := decode(&types.Message{Body: aws.String("x"), MessageId: aws.String("sqs-1")}, &m); err != nil {
		t.Fatal(err)
	}
	if m.Header == nil || m.ID != "sqs-1" {
		t.Fatalf("no attributes: got Header %v ID %q, want an empty map and the MessageId", m.Header, m.ID)
	}

	in := &mq.Message{ID: "sqs-1", Key: "\x00\xc8", Body: []byte("x"), Header: map[string]string{"bin": "\xff\x00", "txt": "t", "": "empty key", "e": ""}}
	var e encoded
	e.encode(in)
	if a, ok := e.attrs["bin"]; !ok || *a.DataType != "Binary" || string(a.BinaryValue) != "\xff\x00" {
		t.Errorf("attribute bin: got %+v, want Binary \\xff\\x00", a)
	}
	var out mq.Message
	if err := decode(received(&e, "other"), &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Key != in.Key || string(out.Body) != string(in.Body) || !maps.Equal(out.Header, in.Header) {
		t.Errorf("round trip: got ID %q Key %q Body %q Header %q, want %q %q %q %q", out.ID, out.Key, out.Body, out.Header, in.ID, in.Key, in.Body, in.Header)
	}
}
