package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/seedmq/mq"
)

// publishCases check that what is published arrives intact, once, on the
// right topic.
var publishCases = []testCase{
	{name: "round-trip", run: roundTrip},
	{name: "publish-before-subscribe", run: publishBeforeSubscribe},
	{name: "body-bytes", run: bodyBytes},
	{name: "many-headers", run: manyHeaders},
	{name: "id-fill", run: idFill},
	{name: "max-size", run: maxSize},
	{name: "over-size", run: overSize},
	{name: "topic-isolation", run: topicIsolation},
	{name: "many-topics", run: manyTopics},
	{name: "batch-publish", run: batchPublish},
	{name: "large-batch", run: largeBatch},
	{name: "concurrent-publishers", run: concurrentPublishers},
}

// sameHeaders reports whether two header maps hold the same entries; nil
// and empty are the same.
func sameHeaders(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

// checkDelivered compares a delivered message with the one published.
func checkDelivered(t *testing.T, got, want *mq.Message) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("delivered ID: got %q, want %q", got.ID, want.ID)
	}
	if got.Key != want.Key {
		t.Errorf("message %s: delivered Key: got %q, want %q", want.ID, got.Key, want.Key)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("message %s: delivered Body: got %d bytes %q, want %d bytes %q", want.ID, len(got.Body), clip(got.Body), len(want.Body), clip(want.Body))
	}
	if !sameHeaders(got.Header, want.Header) {
		t.Errorf("message %s: delivered Header: got %q, want %q", want.ID, got.Header, want.Header)
	}
}

// clip shortens a body for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// roundTrip: 100 messages published by one connection arrive at another
// with ID, Key, Body and Header intact and the delivery facts filled.
func roundTrip(t *testing.T, e *env) {
	pub, con := e.open(t), e.open(t)
	e.provision(t, pub, e.topic, e.group)
	msgs := make([]*mq.Message, 100)
	for i := range msgs {
		msgs[i] = &mq.Message{
			Key:    "key-" + strconv.Itoa(i%10),
			Body:   []byte("body " + strconv.Itoa(i)),
			Header: map[string]string{"seq": strconv.Itoa(i), "content-type": "text/plain"},
		}
		if i%2 == 0 {
			msgs[i].ID = "id-" + e.suffix + "-" + strconv.Itoa(i) // caller-chosen IDs are kept
		}
	}
	before := time.Now()
	e.publish(t, pub, e.topic, msgs...)
	after := time.Now()

	c := newCollector()
	e.sub(t, con, c.handler(0, nil))
	e.awaitAcked(t, c, "round trip", ids(msgs))

	// Brokers may record publish time in whole seconds or on a clock a
	// little off ours: allow that much.
	const slack = 5 * time.Second
	for i, m := range msgs {
		if i%2 == 0 && m.ID != "id-"+e.suffix+"-"+strconv.Itoa(i) {
			t.Errorf("message %d: Publish changed the caller's ID to %q", i, m.ID)
		}
		d := c.deliveries(m.ID)[0].msg
		checkDelivered(t, d, m)
		if d.Topic != e.topic {
			t.Errorf("message %s: Topic: got %q, want %q", m.ID, d.Topic, e.topic)
		}
		if d.Group != e.group {
			t.Errorf("message %s: Group: got %q, want %q", m.ID, d.Group, e.group)
		}
		if d.Attempt != 1 {
			t.Errorf("message %s: Attempt on first delivery: got %d, want 1", m.ID, d.Attempt)
		}
		if !d.PublishTime.IsZero() && (d.PublishTime.Before(before.Add(-slack)) || d.PublishTime.After(after.Add(slack))) {
			t.Errorf("message %s: PublishTime %v is outside the Publish call [%v, %v] by more than %v", m.ID, d.PublishTime, before, after, slack)
		}
	}
	for _, m := range msgs {
		if n := c.count(m.ID); n != 1 {
			t.Errorf("message %s delivered %d times, want 1 (it was acknowledged the first time)", m.ID, n)
		}
	}
}

// publishBeforeSubscribe: messages published to a provisioned group
// while no subscriber runs, by a publisher that then exits, wait for it.
func publishBeforeSubscribe(t *testing.T, e *env) {
	pub := e.open(t)
	e.provision(t, pub, e.topic, e.group)
	msgs := numbered(20, "early")
	e.publish(t, pub, e.topic, msgs...)
	e.close(t, pub) // the publishing service goes away before anyone consumes

	c := newCollector()
	e.sub(t, e.open(t), c.handler(0, nil))
	e.awaitAcked(t, c, "published before any subscriber ran", ids(msgs))
}

// bodyBytes: bodies arrive byte for byte, whatever bytes they hold.
func bodyBytes(t *testing.T, e *env) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	bodies := []struct {
		name string
		body []byte
	}{
		{"empty", []byte{}},
		{"nil", nil},
		{"nul", []byte{0}},
		{"nuls inside", []byte("a\x00b\x00\x00c")},
		{"invalid utf-8", []byte{0xff, 0xfe, 0xfd, 'x', 0xc3}},
		{"every byte value", all},
		{"control characters", []byte("\x01\x02\x07\x08\x0b\x0c\x1b\x7f")},
		{"line endings", []byte("a\r\nb\rc\n\t")},
		{"unicode", []byte("héllo wörld 世界 🙂")},
		{"looks like base64", []byte("aGVsbG8gd29ybGQ=")},
		{"looks like json", []byte(`{"a":1,"b":[true,null]}`)},
		{"xml special", []byte("<a>&amp;</a>\"'")},
		{"64 KiB random", random},
	}
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := make([]*mq.Message, len(bodies))
	for i, bb := range bodies {
		msgs[i] = &mq.Message{Body: bb.body, Header: map[string]string{"case": bb.name}}
	}
	e.publish(t, b, e.topic, msgs...)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.awaitAcked(t, c, "bodies of every kind", ids(msgs))
	for i, bb := range bodies {
		got := c.deliveries(msgs[i].ID)[0].msg.Body
		if !bytes.Equal(got, bb.body) {
			t.Errorf("body %q: got %d bytes %q, want %d bytes %q", bb.name, len(got), clip(got), len(bb.body), clip(bb.body))
		}
	}
}

// headerCount is how many headers many-headers sends: the broker's
// MaxHeaders, at most 32.
func headerCount(c mq.Capabilities) int {
	if c.MaxHeaders > 0 {
		return min(c.MaxHeaders, 32)
	}
	return 32
}

// manyHeaders: as many headers as the broker allows (up to 32) round-trip,
// with unicode and empty values.
func manyHeaders(t *testing.T, e *env) {
	n := headerCount(e.caps)
	h := make(map[string]string, n)
	for i := range n {
		h[fmt.Sprintf("x-h%02d", i)] = fmt.Sprintf("välue %d — 世界 🙂 %q", i, "quoted")
	}
	if n >= 2 {
		h["x-h01"] = "" // an empty value is a value
	}
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	m := &mq.Message{Body: []byte("headers"), Header: h}
	one := &mq.Message{Body: []byte("one header"), Header: map[string]string{"only": "ünïcode"}}
	none := &mq.Message{Body: []byte("no headers")}
	e.publish(t, b, e.topic, m, one, none)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.awaitAcked(t, c, "messages with headers", ids([]*mq.Message{m, one, none}))
	for _, want := range []*mq.Message{m, one, none} {
		got := c.deliveries(want.ID)[0].msg.Header
		if !sameHeaders(got, want.Header) {
			t.Errorf("message with %d headers: delivered headers: got %d %q, want %d %q", len(want.Header), len(got), got, len(want.Header), want.Header)
		}
	}
}

// idFill: Publish fills empty IDs with distinct UUIDv7 values, keeps the
// caller's, and the delivered IDs are the same.
func idFill(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := numbered(4, "id")
	msgs[3].ID = "caller-id-" + e.suffix
	e.publish(t, b, e.topic, msgs...)
	seen := map[string]bool{}
	for i, m := range msgs[:3] {
		u, err := uuid.Parse(m.ID)
		if err != nil || u.Version() != 7 {
			t.Errorf("message %d: ID filled by Publish: got %q, want a UUIDv7", i, m.ID)
		}
		if seen[m.ID] {
			t.Errorf("message %d: ID %q filled twice", i, m.ID)
		}
		seen[m.ID] = true
	}
	if msgs[3].ID != "caller-id-"+e.suffix {
		t.Errorf("caller-set ID: got %q after Publish, want %q", msgs[3].ID, "caller-id-"+e.suffix)
	}
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.awaitAcked(t, c, "messages identified by their filled IDs", ids(msgs))
	for _, m := range msgs {
		if d := c.deliveries(m.ID)[0].msg; string(d.Body) != string(m.Body) {
			t.Errorf("message %s: delivered body %q, want %q", m.ID, d.Body, m.Body)
		}
	}
}

// sized returns a message whose Size is exactly n, with a binary body.
func sized(t *testing.T, id string, n int) *mq.Message {
	t.Helper()
	m := &mq.Message{ID: id, Key: "k", Header: map[string]string{"h": "v"}}
	body := n - m.Size()
	if body < 0 {
		t.Fatalf("cannot build a %d-byte message: ID, key and header take %d", n, m.Size())
	}
	m.Body = make([]byte, body)
	for i := range m.Body {
		m.Body[i] = byte(i * 7)
	}
	if m.Size() != n {
		t.Fatalf("built message of Size %d, want %d", m.Size(), n)
	}
	return m
}

func needLimit(t *testing.T, e *env) int {
	t.Helper()
	if e.caps.MaxMessageBytes <= 0 {
		t.Skipf("skipped: the %s driver reports Capabilities.MaxMessageBytes 0 (no limit)", e.caps.Driver)
	}
	return e.caps.MaxMessageBytes
}

// maxSize: a message of exactly Capabilities.MaxMessageBytes (by
// Message.Size, binary body) is accepted and delivered intact.
func maxSize(t *testing.T, e *env) {
	limit := needLimit(t, e)
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	m := sized(t, "max-"+e.suffix, limit)
	e.publish(t, b, e.topic, m)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.awaitAcked(t, c, "a message of the maximum size", []string{m.ID})
	checkDelivered(t, c.deliveries(m.ID)[0].msg, m)
}

// overSize: one byte over the limit fails the whole Publish with
// ErrMessageTooLarge before anything is sent.
func overSize(t *testing.T, e *env) {
	limit := needLimit(t, e)
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	small := &mq.Message{ID: "small-" + e.suffix, Body: []byte("small")}
	big := sized(t, "big-"+e.suffix, limit+1)
	err := e.tryPublish(b, e.topic, small, big)
	if !errors.Is(err, mq.ErrMessageTooLarge) {
		t.Fatalf("Publish of a message of Size %d (limit %d): got %v, want ErrMessageTooLarge", big.Size(), limit, err)
	}
	if mq.IsRetryable(err) {
		t.Errorf("IsRetryable(%v): got true, want false", err)
	}
	expectNothingSent(t, e, b, small.ID, big.ID)
}

// expectNothingSent subscribes, publishes a marker, waits for it
// and then shows for the grace period that none of the rejected IDs is
// delivered: a rejected Publish must not have sent any of its messages.
func expectNothingSent(t *testing.T, e *env, b mq.Broker, rejected ...string) {
	t.Helper()
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	marker := &mq.Message{Body: []byte("marker")}
	e.publish(t, b, e.topic, marker)
	e.awaitAcked(t, c, "the marker published after the rejected call", []string{marker.ID})
	e.never(t, c, "a message of a rejected Publish call was delivered", func() bool {
		for _, id := range rejected {
			if c.count(id) > 0 {
				return true
			}
		}
		return false
	})
}

// topicIsolation: a subscriber receives only its own topic's messages.
func topicIsolation(t *testing.T, e *env) {
	b := e.open(t)
	topicA, topicB := e.topic, e.newTopic()
	e.provision(t, b, topicA, e.group)
	e.provision(t, b, topicB, e.group)
	a, bm := numbered(10, "a"), numbered(10, "b")
	e.publish(t, b, topicA, a...)
	e.publish(t, b, topicB, bm...)
	ca, cb := newCollector(), newCollector()
	e.subscribe(t, b, topicA, ca.handler(0, nil), mq.Group(e.group))
	e.subscribe(t, b, topicB, cb.handler(1, nil), mq.Group(e.group))
	e.awaitAcked(t, ca, "topic A", ids(a))
	e.awaitAcked(t, cb, "topic B", ids(bm))
	for _, x := range []struct {
		c     *collector
		topic string
		tag   string
	}{{ca, topicA, "a"}, {cb, topicB, "b"}} {
		for _, r := range x.c.all() {
			if r.msg.Topic != x.topic || r.msg.Header["tag"] != x.tag {
				t.Errorf("subscriber of %s got message %s of topic %q tagged %q", x.topic, r.msg.ID, r.msg.Topic, r.msg.Header["tag"])
			}
		}
	}
}

// manyTopics: ten topics subscribed at once on one connection each get
// their own messages.
func manyTopics(t *testing.T, e *env) {
	const n = 10
	b := e.open(t)
	c := newCollector()
	topics := make([]string, n)
	var all []string
	for i := range topics {
		topics[i] = e.newTopic()
		e.provision(t, b, topics[i], e.group)
		e.subscribe(t, b, topics[i], c.handler(i, nil), mq.Group(e.group))
	}
	for i, topic := range topics {
		msgs := numbered(5, "t"+strconv.Itoa(i))
		e.publish(t, b, topic, msgs...)
		all = append(all, ids(msgs)...)
	}
	e.awaitAcked(t, c, "messages on 10 topics", all)
	for _, r := range c.all() {
		if want := topics[r.consumer]; r.msg.Topic != want || r.msg.Header["tag"] != "t"+strconv.Itoa(r.consumer) {
			t.Errorf("subscriber of %s got message %s of topic %q tagged %q", want, r.msg.ID, r.msg.Topic, r.msg.Header["tag"])
		}
	}
}

// batchPublish: one Publish call with 50 messages; each gets an ID and
// arrives once.
func batchPublish(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := numbered(50, "batch")
	e.publish(t, b, e.topic, msgs...)
	seen := map[string]bool{}
	for i, m := range msgs {
		if m.ID == "" || seen[m.ID] {
			t.Fatalf("message %d: ID after Publish: got %q, want a new unique ID", i, m.ID)
		}
		seen[m.ID] = true
	}
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.awaitAcked(t, c, "one batch", ids(msgs))
	for i, m := range msgs {
		d := c.deliveries(m.ID)
		checkDelivered(t, d[0].msg, m)
		if len(d) != 1 {
			t.Errorf("message %d delivered %d times, want 1", i, len(d))
		}
	}
}

// largeBatch: one Publish call with 1000 messages all arrive. A sanity
// check of batching limits, not a timing test.
func largeBatch(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := numbered(1000, "large")
	e.publish(t, b, e.topic, msgs...)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil), mq.Concurrency(8))
	e.awaitAcked(t, c, "a batch of 1000", ids(msgs))
}

// concurrentPublishers: 8 goroutines on two connections publish 25
// messages each, one per call; all arrive, none twice.
func concurrentPublishers(t *testing.T, e *env) {
	const workers, each = 8, 25
	pubs := []mq.Broker{e.open(t), e.open(t)}
	e.provision(t, pubs[0], e.topic, e.group)
	var (
		mu        sync.Mutex
		published []string
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m := &mq.Message{Key: fmt.Sprintf("w%d", w), Body: fmt.Appendf(nil, "w%d-%d", w, i)}
				if err := e.tryPublish(pubs[w%2], e.topic, m); err != nil {
					t.Errorf("worker %d: Publish %d: %v", w, i, err)
					return
				}
				mu.Lock()
				published = append(published, m.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	c := newCollector()
	e.sub(t, e.open(t), c.handler(0, nil), mq.Concurrency(4))
	e.awaitAcked(t, c, "published concurrently", published)
	for _, id := range published {
		if n := c.count(id); n != 1 {
			t.Errorf("message %s delivered %d times, want 1", id, n)
		}
	}
}
