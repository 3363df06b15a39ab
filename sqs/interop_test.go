package sqs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/internal/brokertest"
	"github.com/seedmq/mq/sqs/sqstest"
)

// The interop tests exchange messages with boto3, the AWS SDK for Python,
// in both directions, and compare them field by field with the
// Interoperability table of the package documentation (issue 19). boto3
// comes from PyPI, in the virtualenv scripts/pyenv makes under .cache.

// boto3Message is one message as sqs/testdata/interop_boto3.py prints it.
type boto3Message struct {
	MessageID  string `json:"message_id"`
	BodyHex    string `json:"body_hex"`
	Attributes map[string]struct {
		Type string `json:"type"`
		Hex  string `json:"hex"`
	} `json:"attributes"`
}

// boto3 runs interop_boto3.py with mode, the test server and args,
// bounded by a minute, and returns the JSON objects it printed.
func boto3(t *testing.T, py, mode string, args ...string) []boto3Message {
	t.Helper()
	endpoint, region := sqstest.Endpoint(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/interop_boto3.py", mode, endpoint, region}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop_boto3.py %s: %v\n%s", mode, err, stderr.String())
	}
	var msgs []boto3Message
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m boto3Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("interop_boto3.py %s printed %q: %v", mode, sc.Bytes(), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// checkAttrs compares the attributes boto3 received with want (name to
// data type and value).
func checkAttrs(t *testing.T, got boto3Message, want map[string][2]string) {
	t.Helper()
	if len(got.Attributes) != len(want) {
		t.Errorf("boto3 got attributes %v, want %v", got.Attributes, want)
	}
	for k, w := range want {
		a, ok := got.Attributes[k]
		if !ok || a.Type != w[0] || a.Hex != hex.EncodeToString([]byte(w[1])) {
			t.Errorf("boto3: attribute %q: got %s %s (present %v), want %s %x", k, a.Type, a.Hex, ok, w[0], w[1])
		}
	}
}

func provisioned(t *testing.T, b mq.Broker, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mq.Provision(ctx, b, topic); err != nil {
		t.Fatalf("Provision: %v", err)
	}
}

// TestInteropFromBoto3: a message boto3 sends (String, Number and Binary
// attributes) is delivered with its MessageId as ID and every attribute
// as a header, and republished unchanged through mq it reaches boto3
// with the same body, ID and header bytes.
func TestInteropFromBoto3(t *testing.T) {
	py := brokertest.Python(t, "boto3 interop test")
	b := open(t, "")
	q, q2 := topic(t), topic(t)
	provisioned(t, b, q)
	provisioned(t, b, q2)
	got := make(chan *mq.Message, 10)
	subscribe(t, b, q, func(_ context.Context, m *mq.Message) error { got <- m; return nil })
	sent := boto3(t, py, "send", q)
	if len(sent) != 1 || sent[0].MessageID == "" {
		t.Fatalf("interop_boto3.py send printed %v, want one MessageId", sent)
	}
	m := waitFor(t, got, 1, 60*time.Second)[0]
	if m.ID != sent[0].MessageID {
		t.Errorf("ID: got %q, want the MessageId %q", m.ID, sent[0].MessageID)
	}
	if m.Key != "" || string(m.Body) != "boto3 body ünïcode" || m.Attempt != 1 {
		t.Errorf("got Key %q Body %q Attempt %d, want \"\", the body, 1", m.Key, m.Body, m.Attempt)
	}
	if d := time.Since(m.PublishTime); d < -time.Minute || d > time.Minute {
		t.Errorf("PublishTime: got %v, want SentTimestamp, about now", m.PublishTime)
	}
	want := map[string]string{"text": "ünïcode", "count": "7", "blob": "\xfe\x00\xff"}
	if len(m.Header) != len(want) {
		t.Errorf("got headers %q, want %q", m.Header, want)
	}
	for k, v := range want {
		if m.Header[k] != v {
			t.Errorf("header %q: got %q, want %q", k, m.Header[k], v)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Publish(ctx, q2, m); err != nil {
		t.Fatalf("Publish of the delivered boto3 message, unchanged: %v", err)
	}
	r := boto3(t, py, "receive", q2, "1", "30")
	if len(r) != 1 || r[0].BodyHex != hex.EncodeToString(m.Body) {
		t.Fatalf("republished, boto3 got %v, want the body %x", r, m.Body)
	}
	// The Number attribute comes back as a String of the same value.
	checkAttrs(t, r[0], map[string][2]string{
		"mq-id": {"String", m.ID},
		"text":  {"String", "ünïcode"},
		"count": {"String", "7"},
		"blob":  {"Binary", "\xfe\x00\xff"},
	})
}

// TestInteropToBoto3: messages published through mq reach boto3 as the
// Interoperability table says: a text body as the SQS body, a binary one
// in mq-body, ID and Key in mq-id and mq-key, headers as String or
// Binary attributes of their name.
func TestInteropToBoto3(t *testing.T) {
	py := brokertest.Python(t, "boto3 interop test")
	b := open(t, "")
	q := topic(t)
	provisioned(t, b, q)
	text := &mq.Message{ID: "text-" + q, Key: "k-7", Body: []byte("mq body ü"), Header: map[string]string{"text": "ü", "bin": "\xfe\x00"}}
	bin := &mq.Message{ID: "bin-" + q, Body: []byte{0, 0xff}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Publish(ctx, q, text, bin); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	r := boto3(t, py, "receive", q, "2", "30")
	byID := map[string]boto3Message{}
	for _, m := range r {
		id, _ := hex.DecodeString(m.Attributes["mq-id"].Hex)
		byID[string(id)] = m
	}
	if m, ok := byID[text.ID]; !ok || m.BodyHex != hex.EncodeToString(text.Body) {
		t.Errorf("text message: got %+v (present %v), want the body as the SQS body", m, ok)
	} else {
		checkAttrs(t, m, map[string][2]string{
			"mq-id": {"String", text.ID}, "mq-key": {"String", "k-7"},
			"text": {"String", "ü"}, "bin": {"Binary", "\xfe\x00"},
		})
	}
	if m, ok := byID[bin.ID]; !ok {
		t.Errorf("binary message: not received by boto3; got %+v", r)
	} else {
		checkAttrs(t, m, map[string][2]string{"mq-id": {"String", bin.ID}, "mq-body": {"Binary", "\x00\xff"}})
	}
}
