package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// inputCases check that bad input and unsupported requests fail with the
// documented errors before anything is sent, and the As escape hatch.
var inputCases = []testCase{
	{name: "invalid-topic", run: invalidTopic},
	{name: "invalid-message", run: invalidMessage},
	{name: "invalid-options", run: invalidOptions},
	{name: "as", run: asNative},
	{name: "delay-unsupported", lacks: []mq.Capability{mq.CapDelayedDelivery}, run: delayUnsupported},
	{name: "delayed-delivery", needs: []mq.Capability{mq.CapDelayedDelivery}, run: delayedDelivery},
}

// invalidTopic: empty and malformed topic names fail with
// ErrInvalidTopic on Publish and Subscribe.
func invalidTopic(t *testing.T, e *env) {
	b := e.open(t)
	for _, topic := range []string{"", "has space", "tab\there", "new\nline"} {
		err := e.tryPublish(b, topic, &mq.Message{Body: []byte("x")})
		if !errors.Is(err, mq.ErrInvalidTopic) || !errors.Is(err, mq.ErrInvalid) {
			t.Errorf("Publish to topic %q: got %v, want ErrInvalidTopic", topic, err)
		}
		s := e.subscribe(t, b, topic, newCollector().handler(0, nil), mq.Group(e.group))
		if err := e.wait(t, s); !errors.Is(err, mq.ErrInvalidTopic) {
			t.Errorf("Subscribe to topic %q: got %v, want ErrInvalidTopic", topic, err)
		}
	}
}

// invalidMessage: an empty batch, a nil message and a reserved header key
// fail the whole Publish with ErrInvalidMessage, and nothing of it is
// sent. Binary and empty header keys and values are valid (see the
// foreign cases).
func invalidMessage(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	var rejected []string
	for _, tc := range []struct {
		name string
		msgs []*mq.Message
	}{
		{"no messages", nil},
		{"a nil message", []*mq.Message{nil}},
		{"a good message and a nil one", []*mq.Message{{Body: []byte("good")}, nil}},
		{"a reserved header", []*mq.Message{{Body: []byte("good")}, {Header: map[string]string{mq.ReservedHeaderPrefix + "id": "x"}}}},
	} {
		for _, m := range tc.msgs {
			if m != nil {
				m.ID = mq.NewID() // known before Publish, so the check below can look for it
			}
		}
		err := e.tryPublish(b, e.topic, tc.msgs...)
		if !errors.Is(err, mq.ErrInvalidMessage) || !errors.Is(err, mq.ErrInvalid) {
			t.Errorf("Publish with %s: got %v, want ErrInvalidMessage", tc.name, err)
		}
		for _, m := range tc.msgs {
			if m != nil {
				rejected = append(rejected, m.ID)
			}
		}
	}
	expectNothingSent(t, e, b, rejected...)
}

// invalidOptions: bad subscribe options fail Subscribe with
// ErrInvalidOption at once.
func invalidOptions(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	h := newCollector().handler(0, nil)
	for _, tc := range []struct {
		name string
		opts []mq.SubscribeOption
	}{
		{"Concurrency(0)", []mq.SubscribeOption{mq.Concurrency(0)}},
		{"Concurrency(-1)", []mq.SubscribeOption{mq.Concurrency(-1)}},
		{"Backoff(nil)", []mq.SubscribeOption{mq.Backoff(nil)}},
		{"StartAt(7)", []mq.SubscribeOption{mq.StartAt(mq.StartPosition(7))}},
		{"Group with a space", []mq.SubscribeOption{mq.Group("bad group")}},
	} {
		s := e.subscribe(t, b, e.topic, h, append([]mq.SubscribeOption{mq.Group(e.group)}, tc.opts...)...)
		if err := e.wait(t, s); !errors.Is(err, mq.ErrInvalidOption) || !errors.Is(err, mq.ErrInvalid) {
			t.Errorf("Subscribe with %s: got %v, want ErrInvalidOption", tc.name, err)
		}
	}
	s := e.sub(t, b, nil)
	if err := e.wait(t, s); !errors.Is(err, mq.ErrInvalid) {
		t.Errorf("Subscribe with a nil handler: got %v, want an error matching ErrInvalid", err)
	}
}

// asNative: As refuses nil and foreign targets on brokers and on
// received messages, and never panics. Which native types each driver
// exposes is tested in the driver's own tests.
func asNative(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	var foreign struct{ conformance int }
	if mq.As(b, nil) {
		t.Error("mq.As(broker, nil): got true, want false")
	}
	if mq.As(b, &foreign) {
		t.Error("mq.As(broker, &struct{...}): got true, want false")
	}
	var native any
	t.Logf("mq.As(broker, *any) = %v (%T)", mq.As(b, &native), native)

	type result struct {
		asNil, asForeign, asNilPtr, asAny bool
		native                            any
	}
	got := make(chan result, 1)
	m := &mq.Message{Body: []byte("as")}
	if m.As(&native) {
		t.Error("As on a message that was never delivered: got true, want false")
	}
	e.publish(t, b, e.topic, m)
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		var r result
		var f struct{ conformance int }
		var nilPtr *struct{ conformance int }
		r.asNil = m.As(nil)
		r.asForeign = m.As(&f)
		r.asNilPtr = m.As(nilPtr)
		r.asAny = m.As(&r.native)
		select {
		case got <- r:
		default:
		}
		return nil
	}))
	e.awaitAcked(t, c, "a message to try As on", []string{m.ID})
	r := <-got
	if r.asNil || r.asForeign || r.asNilPtr {
		t.Errorf("Message.As(nil), As(&struct{...}), As((*struct{...})(nil)): got %v %v %v, want all false", r.asNil, r.asForeign, r.asNilPtr)
	}
	t.Logf("received Message.As(*any) = %v (%T)", r.asAny, r.native)
}

// delayUnsupported: a broker without DelayedDelivery rejects a message
// with a Delay with ErrNotSupported, sending nothing of the call.
func delayUnsupported(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	good := &mq.Message{Body: []byte("no delay")}
	delayed := &mq.Message{Body: []byte("delayed"), Delay: time.Second}
	err := e.tryPublish(b, e.topic, good, delayed)
	if !errors.Is(err, mq.ErrNotSupported) {
		t.Fatalf("Publish with Delay on a broker without DelayedDelivery: got %v, want ErrNotSupported", err)
	}
	expectNothingSent(t, e, b, good.ID, delayed.ID)
}

// delayedDelivery: a message with a Delay is not delivered before it.
func delayedDelivery(t *testing.T, e *env) {
	delay := 2 * time.Second
	if e.caps.MaxDelay > 0 {
		delay = min(delay, e.caps.MaxDelay)
	}
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	now := &mq.Message{Body: []byte("now")}
	later := &mq.Message{Body: []byte("later"), Delay: delay}
	start := time.Now()
	e.publish(t, b, e.topic, later, now)
	e.awaitAcked(t, c, "the undelayed message", []string{now.ID})
	e.awaitAckedFor(t, e.timeout+delay, c, "the delayed message", []string{later.ID})
	if gap := c.deliveries(later.ID)[0].at.Sub(start); gap < delay-delayTolerance {
		t.Errorf("message with Delay %v delivered %v after Publish began, want no earlier than %v", delay, gap, delay)
	} else {
		t.Logf("delayed message delivered %v after Publish began (Delay %v)", gap, delay)
	}
}
