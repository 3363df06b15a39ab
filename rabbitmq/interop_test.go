package rabbitmq_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/internal/brokertest"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// The interop tests exchange messages with pika, a real AMQP client that
// does not use mq, in both directions, and compare them field by field
// with the Interoperability table of the package documentation (issue
// 19). pika comes from PyPI, in the virtualenv scripts/pyenv makes under
// .cache.

// pikaMessage is one message as rabbitmq/testdata/interop_pika.py prints it.
type pikaMessage struct {
	RoutingKey   string `json:"routing_key"`
	Exchange     string `json:"exchange"`
	MessageID    string `json:"message_id"`
	DeliveryMode int    `json:"delivery_mode"`
	BodyHex      string `json:"body_hex"`
	Headers      map[string]struct {
		Type  string `json:"type"`
		Hex   string `json:"hex"`
		Value string `json:"value"`
	} `json:"headers"`
}

// pika runs interop_pika.py with args, bounded by a minute, and returns
// its output.
func pika(t *testing.T, py string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/interop_pika.py"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop_pika.py %s: %v\n%s", args[0], err, stderr.String())
	}
	return out
}

func pikaGet(t *testing.T, py, queue string) pikaMessage {
	t.Helper()
	out := pika(t, py, "get", rabbitmqtest.URL(t), queue, "1", "30")
	var m pikaMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("interop_pika.py get printed %q: %v", out, err)
	}
	return m
}

// checkPikaHeaders compares the headers pika received with want: a
// string value pika decodes as str when it is UTF-8, as bytes otherwise.
// The x-delivery-count header a quorum queue adds is not the message's.
func checkPikaHeaders(t *testing.T, got pikaMessage, want map[string]string) {
	t.Helper()
	delete(got.Headers, "x-delivery-count")
	if len(got.Headers) != len(want) {
		t.Errorf("pika got %d headers %v, want %d", len(got.Headers), got.Headers, len(want))
	}
	for k, v := range want {
		h, ok := got.Headers[k]
		if !ok {
			t.Errorf("pika: header %q missing", k)
			continue
		}
		if h.Hex != hex.EncodeToString([]byte(v)) || (h.Type != "str" && h.Type != "bytes") {
			t.Errorf("pika: header %q: got %s %s, want the bytes %x", k, h.Type, h.Hex, v)
		}
	}
}

func provisioned(t *testing.T, b mq.Broker, topic string, groups ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := mq.Provision(ctx, b, topic, groups...); err != nil {
		t.Fatalf("Provision: %v", err)
	}
}

// TestInteropFromPika: a message pika publishes (no message_id, a routing
// key, headers of every AMQP type pika writes, a timestamp) is delivered
// as the Interoperability table says, and republished unchanged through
// mq it reaches pika with the same ID, routing key, body and header bytes.
func TestInteropFromPika(t *testing.T) {
	py := brokertest.Python(t, "pika interop test")
	b := open(t, "")
	topic, topic2 := uniqueTopic(t), uniqueTopic(t)
	provisioned(t, b, topic, "g")
	provisioned(t, b, topic2, "g")
	c := newCollector()
	subscribe(t, b, topic, c.handler, mq.Group("g"))
	pika(t, py, "publish", rabbitmqtest.URL(t), topic)
	m := c.wait(t, 1)[0]

	if !strings.HasPrefix(m.ID, "amqp-sha256:") || len(m.ID) != len("amqp-sha256:")+32 {
		t.Errorf("ID: got %q, want amqp-sha256: and 32 hex digits", m.ID)
	}
	if m.Key != "orders.eu" {
		t.Errorf("Key: got %q, want the routing key orders.eu", m.Key)
	}
	if string(m.Body) != "\x00\xff pika body" {
		t.Errorf("Body: got %q", m.Body)
	}
	if want := time.Unix(1767323045, 0); !m.PublishTime.Equal(want) {
		t.Errorf("PublishTime: got %v, want the timestamp property %v", m.PublishTime, want)
	}
	if m.Attempt != 1 || m.Topic != topic || m.Group != "g" {
		t.Errorf("got Attempt %d Topic %q Group %q, want 1 %q g", m.Attempt, m.Topic, m.Group, topic)
	}
	want := map[string]string{
		"text":  "ünïcode",
		"bytes": "\xfe\x00\xff",
		"int":   "42",
		"neg":   "-7",
		"bool":  "true",
		"dec":   "12345e-2",
		"time":  "2026-01-02T03:04:05Z",
		"none":  "",
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

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := b.Publish(ctx, topic2, m); err != nil {
		t.Fatalf("Publish of the delivered pika message, unchanged: %v", err)
	}
	got := pikaGet(t, py, topic2+".g")
	if got.MessageID != m.ID || got.RoutingKey != m.Key || got.BodyHex != hex.EncodeToString(m.Body) {
		t.Errorf("republished, pika got message_id %q routing key %q body %s; want %q %q %x", got.MessageID, got.RoutingKey, got.BodyHex, m.ID, m.Key, m.Body)
	}
	want["mq-key"] = m.Key
	checkPikaHeaders(t, got, want)
}

// TestInteropToPika: a message published through mq reaches pika as the
// Interoperability table says: message_id, routing key and mq-key,
// persistent, body and headers byte for byte.
func TestInteropToPika(t *testing.T) {
	py := brokertest.Python(t, "pika interop test")
	b := open(t, "")
	topic := uniqueTopic(t)
	provisioned(t, b, topic, "g")
	m := &mq.Message{ID: "interop-" + topic, Key: "k-7", Body: []byte{0, 0xff, 'b'}, Header: map[string]string{"text": "ü", "bin": "\xfe\x00"}}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := b.Publish(ctx, topic, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := pikaGet(t, py, topic+".g")
	if got.MessageID != m.ID || got.RoutingKey != m.Key || got.Exchange != topic || got.DeliveryMode != 2 || got.BodyHex != hex.EncodeToString(m.Body) {
		t.Errorf("pika got message_id %q routing key %q exchange %q delivery mode %d body %s; want %q %q %q 2 %x",
			got.MessageID, got.RoutingKey, got.Exchange, got.DeliveryMode, got.BodyHex, m.ID, m.Key, topic, m.Body)
	}
	checkPikaHeaders(t, got, map[string]string{"text": "ü", "bin": "\xfe\x00", "mq-key": "k-7"})
}
