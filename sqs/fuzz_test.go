package sqs

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// FuzzCodecRoundTrip checks the attribute codec: any message Publish's
// checks accept encodes into a body and at most ten attributes SQS
// accepts, and decodes back to the same ID, Key, Body and Header.
func FuzzCodecRoundTrip(f *testing.F) {
	f.Add("id-1", "k", []byte("hello"), "a", "b", "traceparent", "00-x")
	f.Add("", "", []byte{}, "Content Type", "", "AWS.x", "y")
	f.Add("id\x01", "ключ", []byte{0, 0xff}, "ünï", "a\x01b", "x..y", "\uFFFE")
	lim := driver.LimitsOf(mq.Capabilities{MaxMessageBytes: DefaultServerMaxBytes - headerReserve, MaxHeaders: MaxHeaders})
	f.Fuzz(func(t *testing.T, id, key string, body []byte, k1, v1, k2, v2 string) {
		m := &mq.Message{ID: id, Key: key, Body: body, Header: map[string]string{}}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if kv[0] != "" {
				m.Header[kv[0]] = kv[1]
			}
		}
		if driver.PrepareMessages([]*mq.Message{m}, lim) != nil {
			return // refused before sending
		}
		in := m.Clone()
		got, _ := roundTrip(t, m)
		if got.ID != in.ID || got.Key != in.Key || !bytes.Equal(got.Body, in.Body) || !maps.Equal(got.Header, in.Header) || got.Attempt != 3 {
			t.Fatalf("round trip: got ID %q Key %q Body %q Header %q Attempt %d; want %q %q %q %q 3",
				got.ID, got.Key, got.Body, got.Header, got.Attempt, in.ID, in.Key, in.Body, in.Header)
		}
		if got.Body == nil {
			t.Fatal("an empty body decoded as nil, want empty")
		}
	})
}

// FuzzDecodeForeign decodes messages whose attributes another producer
// set to anything, mq's own names included: decode must not panic, must
// give the same message every time (map order must not matter), Attempt
// is at least 1 and comes from ApproximateReceiveCount only, ID is never
// empty, Header is never nil and never shows an "mq-" name.
func FuzzDecodeForeign(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0x0f}, "mq-h", "mq-body", []byte("v"), "source", "billing", "3", "1700000000000")
	f.Add(packPairs([]string{attrID, "x", "h"}), "mq-id", "mq-key", []byte{}, "mq-key", "", "0", "x")
	f.Add([]byte{5, 'a'}, "mq-h", "h", []byte(nil), "h", "v", "-1", "")
	f.Fuzz(func(t *testing.T, packed []byte, n1, n2 string, bin []byte, n3, s3, count, sent string) {
		attrs := map[string]types.MessageAttributeValue{
			attrPacked: {DataType: aws.String("Binary"), BinaryValue: packed},
			n1:         {DataType: aws.String("Binary"), BinaryValue: bin},
			n2:         {DataType: aws.String("String"), StringValue: aws.String(string(bin))},
			n3:         {DataType: aws.String("String"), StringValue: aws.String(s3)},
		}
		sm := &types.Message{
			Body:              aws.String(bodyPlaceholder),
			MessageId:         aws.String("sqs-id"),
			MessageAttributes: attrs,
			Attributes:        map[string]string{"ApproximateReceiveCount": count, "SentTimestamp": sent},
		}
		var first mq.Message
		firstErr := decode(sm, &first)
		if first.Attempt < 1 || first.ID == "" || first.Header == nil {
			t.Fatalf("got Attempt %d, ID %q, Header %v; want Attempt at least 1, an ID, a Header", first.Attempt, first.ID, first.Header)
		}
		for k := range first.Header {
			if strings.HasPrefix(k, mq.ReservedHeaderPrefix) {
				t.Fatalf("Header shows the reserved name %q", k)
			}
		}
		for range 3 {
			var again mq.Message
			err := decode(sm, &again)
			if (err == nil) != (firstErr == nil) || again.ID != first.ID || again.Key != first.Key || !bytes.Equal(again.Body, first.Body) ||
				!maps.Equal(again.Header, first.Header) || again.Attempt != first.Attempt || !again.PublishTime.Equal(first.PublishTime) {
				t.Fatalf("decode is not deterministic: got %+v (%v), then %+v (%v)", first, firstErr, again, err)
			}
		}
	})
}
