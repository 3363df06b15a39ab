package sqs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
)

const (
	testQueueARN = "arn:aws:sqs:us-east-1:123456789012:orders-billing"
	testTopicARN = "arn:aws:sns:us-east-1:123456789012:orders"
)

// wantStatement is the statement that lets testTopicARN send to
// testQueueARN. moto delivers to a queue whatever its policy says, so
// only this test checks what AWS requires: the SNS service principal,
// sqs:SendMessage on the queue, limited to the topic by aws:SourceArn.
var wantStatement = map[string]any{
	"Effect":    "Allow",
	"Principal": map[string]any{"Service": "sns.amazonaws.com"},
	"Action":    "sqs:SendMessage",
	"Resource":  testQueueARN,
	"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": testTopicARN}},
}

func statements(t *testing.T, doc string) (version any, sts []map[string]any) {
	t.Helper()
	var p struct {
		Version   any
		Statement []map[string]any
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatalf("policy %s: %v", doc, err)
	}
	return p.Version, p.Statement
}

func withoutSid(st map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range st {
		if k != "Sid" {
			out[k] = v
		}
	}
	return out
}

func TestAllowTopicNewPolicy(t *testing.T) {
	doc, changed, err := allowTopic("", testQueueARN, testTopicARN)
	if err != nil || !changed {
		t.Fatalf("allowTopic(empty): got changed %v, err %v; want true, nil", changed, err)
	}
	version, sts := statements(t, doc)
	if version != "2012-10-17" {
		t.Errorf("Version: got %v, want 2012-10-17", version)
	}
	if len(sts) != 1 {
		t.Fatalf("got %d statements, want 1: %s", len(sts), doc)
	}
	if got := withoutSid(sts[0]); !reflect.DeepEqual(got, wantStatement) {
		t.Errorf("statement: got %v, want %v", got, wantStatement)
	}
	if sid, _ := sts[0]["Sid"].(string); !strings.HasPrefix(sid, "mq-sns-") {
		t.Errorf("Sid: got %q, want mq-sns-...", sid)
	}
	// Idempotent: a second call changes nothing.
	again, changed, err := allowTopic(doc, testQueueARN, testTopicARN)
	if err != nil || changed || again != doc {
		t.Errorf("allowTopic(its own result): got changed %v, err %v; want the same policy back", changed, err)
	}
}

func TestAllowTopicKeepsOtherStatements(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"statement object", `{"Version":"2012-10-17","Id":"mine","Statement":{"Sid":"other","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sqs:*","Resource":"` + testQueueARN + `"}}`},
		{"statement list", `{"Version":"2012-10-17","Id":"mine","Statement":[{"Sid":"other","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sqs:*","Resource":"` + testQueueARN + `"}]}`},
		// A Deny naming the topic is no permission: ours is added.
		{"deny for the topic", `{"Statement":[{"Sid":"other","Effect":"Deny","Principal":"*","Action":"sqs:SendMessage","Resource":"` + testQueueARN + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + testTopicARN + `"}}}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, changed, err := allowTopic(tc.doc, testQueueARN, testTopicARN)
			if err != nil || !changed {
				t.Fatalf("got changed %v, err %v; want true, nil", changed, err)
			}
			_, sts := statements(t, doc)
			if len(sts) != 2 || sts[0]["Sid"] != "other" {
				t.Fatalf("got statements %v, want the existing one first, then ours", sts)
			}
			if got := withoutSid(sts[1]); !reflect.DeepEqual(got, wantStatement) {
				t.Errorf("added statement: got %v, want %v", got, wantStatement)
			}
			var p map[string]any
			json.Unmarshal([]byte(doc), &p)
			if strings.Contains(tc.doc, `"Id":"mine"`) && p["Id"] != "mine" {
				t.Errorf("policy Id: got %v, want mine (kept)", p["Id"])
			}
		})
	}
}

func TestAllowTopicExisting(t *testing.T) {
	doc := `{"Statement":[{"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"` + testTopicARN + `"}}}]}`
	got, changed, err := allowTopic(doc, testQueueARN, testTopicARN)
	if err != nil || changed || got != doc {
		t.Errorf("policy allowing the topic already: got changed %v, err %v; want it unchanged", changed, err)
	}
	other := strings.ReplaceAll(doc, ":orders", ":orders2")
	if _, changed, _ := allowTopic(other, testQueueARN, testTopicARN); !changed {
		t.Error("policy allowing another topic (orders2): got unchanged, want a statement added")
	}
}

func TestAllowTopicBadPolicy(t *testing.T) {
	for _, doc := range []string{"{", `{"Statement":"x"}`} {
		if _, _, err := allowTopic(doc, testQueueARN, testTopicARN); err == nil {
			t.Errorf("allowTopic(%s): got nil error, want one", doc)
		}
	}
}

// TestSNSEntries checks the PublishBatch entries made from encoded
// messages: body, attributes (names, types, values) and the FIFO IDs
// carry over unchanged, and a message with more than ten headers still
// has at most ten attributes, as SNS requires (moto does not check).
func TestSNSEntries(t *testing.T) {
	header := map[string]string{}
	for i := range 25 {
		header["h"+strings.Repeat("x", i)] = "v"
	}
	var e encoded
	e.encode(&mq.Message{ID: "id-1", Key: "k", Body: []byte{0, 1, 2}, Header: header})
	if len(e.attrs) > maxAttributes {
		t.Fatalf("encoded: %d attributes, want at most %d", len(e.attrs), maxAttributes)
	}
	in := []types.SendMessageBatchRequestEntry{{
		Id: aws.String("3"), MessageBody: &e.body, MessageAttributes: e.attrs,
		MessageGroupId: aws.String("k"), MessageDeduplicationId: aws.String("id-1"),
	}}
	out := snsEntries(in)
	if len(out) != 1 {
		t.Fatalf("got %d entries, want 1", len(out))
	}
	got := out[0]
	if aws.ToString(got.Id) != "3" || aws.ToString(got.Message) != e.body ||
		aws.ToString(got.MessageGroupId) != "k" || aws.ToString(got.MessageDeduplicationId) != "id-1" {
		t.Errorf("entry: got id %q message %q group %q dedup %q; want 3, %q, k, id-1",
			aws.ToString(got.Id), aws.ToString(got.Message), aws.ToString(got.MessageGroupId), aws.ToString(got.MessageDeduplicationId), e.body)
	}
	if len(got.MessageAttributes) != len(e.attrs) {
		t.Fatalf("got %d attributes, want %d", len(got.MessageAttributes), len(e.attrs))
	}
	for name, want := range e.attrs {
		a, ok := got.MessageAttributes[name]
		if !ok || aws.ToString(a.DataType) != aws.ToString(want.DataType) ||
			aws.ToString(a.StringValue) != aws.ToString(want.StringValue) || string(a.BinaryValue) != string(want.BinaryValue) {
			t.Errorf("attribute %s: got %+v, want %+v", name, a, want)
		}
	}
}
