package conformance

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

// The foreign cases check the rule "whatever a driver delivers, Publish
// accepts" with messages published by the broker's own client
// (Harness.PublishForeign), as producers that do not use mq publish them:
// binary keys (a Java LongSerializer key), binary header values, no ID of
// mq's. They run after the core and middleware cases, and skip when
// Harness.PublishForeign is nil.
func init() {
	register(
		testCase{name: "foreign-delivered", run: foreignDelivered},
		testCase{name: "foreign-republish", run: foreignRepublish},
		testCase{name: "foreign-dead-letter", run: foreignDeadLetter},
	)
}

// foreignKey is what Java's LongSerializer makes of 200.
var foreignKey = []byte{0, 0, 0, 0, 0, 0, 0, 0xc8}

// foreignMessage is the message the foreign cases publish: a text body
// (SQS bodies are text; body-bytes covers binary bodies), a text header
// and a header whose value is not UTF-8.
func foreignMessage() (body []byte, headers map[string][]byte) {
	return []byte("foreign body, ünïcode\t"), map[string][]byte{
		"foreign-text": []byte("ünïcode"),
		"foreign-bin":  {0xfe, 0xff, 0x00, 0x80},
	}
}

// publishForeign publishes the foreign message with foreignKey through
// Harness.PublishForeign, or without a key where the broker has no native
// key for it. It returns the key it used (nil for none).
func publishForeign(t *testing.T, e *env, topic string) []byte {
	t.Helper()
	if e.h.PublishForeign == nil {
		t.Skip("skipped: Harness.PublishForeign is nil")
	}
	body, headers := foreignMessage()
	key := foreignKey
	err := e.h.PublishForeign(e.ctx(t), topic, key, body, headers)
	if errors.Is(err, mq.ErrNotSupported) {
		t.Logf("PublishForeign with a binary key: %v; publishing without a key", err)
		key = nil
		err = e.h.PublishForeign(e.ctx(t), topic, nil, body, headers)
	}
	if err != nil {
		t.Fatalf("Harness.PublishForeign(%q): %v", topic, err)
	}
	return key
}

// checkForeign checks a delivery of the foreign message published with
// key.
func checkForeign(t *testing.T, what string, m *mq.Message, key []byte) {
	t.Helper()
	body, headers := foreignMessage()
	if m.ID == "" {
		t.Errorf("%s: got an empty ID, want one derived from the broker's identity for the message", what)
	}
	if key != nil && m.Key != string(key) {
		t.Errorf("%s: got Key %q, want the native key %q", what, m.Key, key)
	}
	if string(m.Body) != string(body) {
		t.Errorf("%s: got Body %q, want %q", what, m.Body, body)
	}
	if m.Header == nil {
		t.Errorf("%s: got a nil Header, want a map", what)
	}
	for k, v := range headers {
		if got, ok := m.Header[k]; !ok || got != string(v) {
			t.Errorf("%s: header %q: got %q (present %v), want %q", what, k, got, ok, v)
		}
	}
	if len(m.Header) != len(headers) {
		t.Errorf("%s: got headers %q, want exactly %q", what, m.Header, headers)
	}
}

// foreignDelivered: a message published by the broker's own client is
// delivered with a non-empty ID, its native key as Key, its body and
// headers byte for byte (binary values included), and a redelivery after
// a nack has the same ID.
func foreignDelivered(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	c := newCollector()
	e.sub(t, b, c.handler(0, func(_ context.Context, m *mq.Message) error {
		if m.Attempt == 1 {
			return errNack
		}
		return nil
	}), mwBackoff)
	key := publishForeign(t, e, e.topic)
	e.await(t, c, "the foreign message, nacked once, to be acknowledged", func() bool {
		runs := c.all()
		return len(runs) >= 2 && runs[len(runs)-1].done && runs[len(runs)-1].err == nil
	})
	runs := c.all()
	first, second := runs[0].msg, runs[1].msg
	checkForeign(t, "first delivery", first, key)
	checkForeign(t, "redelivery", second, key)
	if second.ID != first.ID {
		t.Errorf("redelivery: got ID %q, want the first delivery's %q: a foreign message's ID must be stable", second.ID, first.ID)
	}
	if first.Attempt != 1 || second.Attempt != 2 {
		t.Errorf("attempts: got %d and %d, want 1 and 2", first.Attempt, second.Attempt)
	}
	if first.Topic != e.topic || first.Group != e.group {
		t.Errorf("got Topic %q Group %q, want %q %q", first.Topic, first.Group, e.topic, e.group)
	}
}

// foreignRepublish: any delivered message, published unchanged by its
// handler to another topic of the same broker, is accepted and arrives
// there with the same ID, Key, Body and Header, byte for byte: a foreign
// message, and one of mq's with a binary ID, Key and header key and
// values.
func foreignRepublish(t *testing.T, e *env) {
	b := e.open(t)
	topic2, group2 := e.newTopic(), e.newGroup()
	if !e.caps.FanOut {
		group2 = e.group
	}
	e.provision(t, b, e.topic, e.group)
	e.provision(t, b, topic2, group2)

	var mu sync.Mutex
	var pubErr error
	src := newCollector()
	e.sub(t, b, src.handler(0, func(ctx context.Context, m *mq.Message) error {
		err := b.Publish(ctx, topic2, m)
		if err != nil {
			mu.Lock()
			pubErr = errors.Join(pubErr, err)
			mu.Unlock()
		}
		return err
	}), mwBackoff)
	dst := newCollector()
	e.subscribe(t, e.open(t), topic2, dst.handler(0, nil), mq.Group(group2))

	native := &mq.Message{
		ID:     "\xffid-" + e.suffix,
		Key:    string(foreignKey),
		Body:   []byte{0, 0xff},
		Header: map[string]string{"bin": "\xfe\x00", "": "empty key", "\xc3key": "v", "empty": ""},
	}
	e.publish(t, b, e.topic, native)
	publishForeign(t, e, e.topic)

	e.await(t, dst, "both messages republished and delivered from "+topic2, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if pubErr != nil {
			t.Fatalf("Publish of a delivered message, unchanged: got %v, want nil (whatever a driver delivers, Publish accepts)", pubErr)
		}
		return len(dst.all()) >= 2
	})
	for _, r := range dst.all() {
		orig := src.deliveries(r.msg.ID)
		if len(orig) == 0 {
			t.Errorf("%s delivered ID %q, which no message of %s had", topic2, r.msg.ID, e.topic)
			continue
		}
		o, got := orig[0].msg, r.msg
		if got.Key != o.Key || string(got.Body) != string(o.Body) || !maps.Equal(got.Header, o.Header) {
			t.Errorf("republished %q: got Key %q Body %q Header %q, want %q %q %q", o.ID, got.Key, got.Body, got.Header, o.Key, o.Body, o.Header)
		}
	}
	if n := native.ID; src.count(n) > 0 {
		d := src.deliveries(n)[0].msg
		if d.Key != native.Key || string(d.Body) != string(native.Body) || !maps.Equal(d.Header, native.Header) {
			t.Errorf("mq message with binary fields: got Key %q Body %q Header %q, want %q %q %q", d.Key, d.Body, d.Header, native.Key, native.Body, native.Header)
		}
	} else {
		t.Errorf("the mq message with a binary ID %q was not delivered under that ID; %s", n, src.summary())
	}
}

// foreignDeadLetter: a foreign message with a binary key whose handler
// returns an mq.Permanent error under middleware.DeadLetter reaches the
// dead-letter topic once, as received, and is never redelivered from its
// source.
func foreignDeadLetter(t *testing.T, e *env) {
	b := e.open(t)
	_, dc := deadLetterSetup(t, e, b)
	c := newCollector()
	dl := middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 5})
	e.sub(t, b, dl(c.handler(0, func(context.Context, *mq.Message) error {
		return mq.Permanent(errors.New("unreadable foreign message"))
	})), mwBackoff)
	key := publishForeign(t, e, e.topic)
	e.await(t, dc, "the foreign message's dead letter", func() bool { return dc.total() >= 1 && c.total() >= 1 })
	src := c.all()[0].msg
	checkForeign(t, "source delivery", src, key)
	e.awaitAcked(t, dc, "the dead letter", []string{src.ID})
	got := dc.deliveries(src.ID)[0].msg
	if got.Key != src.Key || string(got.Body) != string(src.Body) {
		t.Errorf("dead letter: got Key %q Body %q, want %q %q", got.Key, got.Body, src.Key, src.Body)
	}
	for k, v := range src.Header {
		if got.Header[k] != v {
			t.Errorf("dead letter header %q: got %q, want %q", k, got.Header[k], v)
		}
	}
	if got.Header[middleware.HeaderReason] != middleware.ReasonPermanent {
		t.Errorf("dead letter header %q: got %q, want %q", middleware.HeaderReason, got.Header[middleware.HeaderReason], middleware.ReasonPermanent)
	}
	e.never(t, c, "the foreign message was redelivered after it was dead-lettered", func() bool { return c.total() > 1 })
	if n := dc.total(); n != 1 {
		t.Errorf("dead letters: got %d, want exactly 1", n)
	}
}
