package conformance

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// limitCases check that the limits a broker reports in Capabilities, and
// the limits on options and URLs every driver shares, are refused with a
// clear error before anything is sent.
var limitCases = []testCase{
	{name: "key-limit", run: keyLimit},
	{name: "header-limits", run: headerLimits},
	{name: "huge-concurrency", run: hugeConcurrency},
	{name: "malformed-url", run: malformedURL},
}

// keyLimit: a Key one byte over Capabilities.MaxKeyBytes fails the whole
// Publish with ErrInvalidMessage naming the limit, at once and with
// nothing sent; a Key of exactly MaxKeyBytes arrives intact.
func keyLimit(t *testing.T, e *env) {
	limit := e.caps.MaxKeyBytes
	if limit <= 0 {
		t.Skipf("skipped: the %s driver reports Capabilities.MaxKeyBytes 0 (no limit)", e.caps.Driver)
	}
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	good := &mq.Message{ID: mq.NewID(), Key: "k", Body: []byte("good")}
	long := &mq.Message{ID: mq.NewID(), Key: strings.Repeat("k", limit+1), Body: []byte("long key")}
	expectRefused(t, e, b, "a Key of MaxKeyBytes+1 bytes", limit, []error{mq.ErrInvalidMessage}, good, long)
	atLimit := &mq.Message{Key: strings.Repeat("k", limit), Body: []byte("key at the limit")}
	got := expectOnlyArrives(t, e, b, atLimit, good.ID, long.ID)
	if got.Key != atLimit.Key {
		t.Errorf("a Key of MaxKeyBytes (%d) bytes arrived as %d bytes, want it intact", limit, len(got.Key))
	}
}

// headerLimits: a header key one byte over Capabilities.MaxHeaderKeyBytes
// fails with ErrInvalidMessage, and headers one byte over MaxHeaderBytes
// with an error matching both ErrMessageTooLarge and ErrInvalidMessage,
// each naming the limit, at once and with nothing sent; headers at both
// limits arrive intact.
func headerLimits(t *testing.T, e *env) {
	keyLimit, bytesLimit := e.caps.MaxHeaderKeyBytes, e.caps.MaxHeaderBytes
	if keyLimit <= 0 && bytesLimit <= 0 {
		t.Skipf("skipped: the %s driver reports Capabilities.MaxHeaderKeyBytes and MaxHeaderBytes 0 (no limits)", e.caps.Driver)
	}
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	var refused []string
	at := &mq.Message{Body: []byte("headers at the limits"), Header: map[string]string{}}
	if keyLimit > 0 {
		good := &mq.Message{ID: mq.NewID(), Body: []byte("good")}
		long := &mq.Message{ID: mq.NewID(), Header: map[string]string{strings.Repeat("h", keyLimit+1): "v"}}
		expectRefused(t, e, b, "a header key of MaxHeaderKeyBytes+1 bytes", keyLimit, []error{mq.ErrInvalidMessage}, good, long)
		refused = append(refused, good.ID, long.ID)
		at.Header[strings.Repeat("h", keyLimit)] = ""
	}
	if bytesLimit > 0 {
		good := &mq.Message{ID: mq.NewID(), Body: []byte("good")}
		big := &mq.Message{ID: mq.NewID(), Header: map[string]string{"h": strings.Repeat("v", bytesLimit)}}
		expectRefused(t, e, b, "headers of MaxHeaderBytes+1 bytes", bytesLimit, []error{mq.ErrMessageTooLarge, mq.ErrInvalidMessage}, good, big)
		refused = append(refused, good.ID, big.ID)
		used := 0
		for k := range at.Header {
			used += len(k)
		}
		if room := bytesLimit - used - 1; room >= 0 {
			at.Header["v"] = strings.Repeat("v", room)
		}
	}
	got := expectOnlyArrives(t, e, b, at, refused...)
	for k, v := range at.Header {
		if got.Header[k] != v {
			t.Errorf("header %d bytes + %d bytes at the limits arrived as %d bytes, want it intact", len(k), len(v), len(got.Header[k]))
		}
	}
}

// expectRefused publishes msgs in one call and checks that it fails at
// once with every error of want and a message naming limit.
func expectRefused(t *testing.T, e *env, b mq.Broker, what string, limit int, want []error, msgs ...*mq.Message) {
	t.Helper()
	start := time.Now()
	err := e.tryPublish(b, e.topic, msgs...)
	took := time.Since(start)
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("Publish with %s: got %v after %v, want an error matching %v", what, err, took, w)
		}
	}
	if err != nil && !strings.Contains(err.Error(), strconv.Itoa(limit)) {
		t.Errorf("Publish with %s: got %q, want it to name the limit %d", what, err, limit)
	}
	if took > e.grace {
		t.Errorf("Publish with %s took %v, want a refusal before anything is sent (within %v)", what, took, e.grace)
	}
}

// expectOnlyArrives publishes m, waits for it, and checks that none of
// the refused messages is delivered. It returns m as delivered.
func expectOnlyArrives(t *testing.T, e *env, b mq.Broker, m *mq.Message, refused ...string) *mq.Message {
	t.Helper()
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	e.publish(t, b, e.topic, m)
	e.awaitAcked(t, c, "the message at the limit", []string{m.ID})
	e.never(t, c, "a message of a refused Publish call was delivered", func() bool {
		for _, id := range refused {
			if c.count(id) > 0 {
				return true
			}
		}
		return false
	})
	return c.deliveries(m.ID)[0].msg
}

// hugeConcurrency: a Concurrency beyond driver.MaxConcurrency, up to
// math.MaxInt, fails Subscribe at once with ErrInvalidOption and no panic;
// the connection then still works and closes within the timeout.
func hugeConcurrency(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	h := newCollector().handler(0, nil)
	for _, n := range []int{math.MaxInt, math.MaxInt32, driver.MaxConcurrency + 1, math.MinInt} {
		start := time.Now()
		s := e.sub(t, b, h, mq.Concurrency(n))
		if err := e.wait(t, s); !errors.Is(err, mq.ErrInvalidOption) {
			t.Errorf("Subscribe with Concurrency(%d): got %v, want ErrInvalidOption", n, err)
		} else if took := time.Since(start); took > e.grace {
			t.Errorf("Subscribe with Concurrency(%d) took %v to fail, want at once (within %v)", n, took, e.grace)
		}
	}
	c := newCollector()
	e.sub(t, b, c.handler(0, nil), mq.Concurrency(4))
	m := &mq.Message{Body: []byte("after huge concurrency")}
	e.publish(t, b, e.topic, m)
	e.awaitAcked(t, c, "a message after the refused subscriptions", []string{m.ID})
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	start := time.Now()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close after refused huge Concurrency: got %v after %v, want nil", err, time.Since(start))
	}
}

// malformedQueries are query strings that a lenient parser would drop or
// misread: provision=false;x would leave provisioning on.
var malformedQueries = []string{"group=billing;x", "no_such_param=%zz", "provision=false;x", "group=%zz", "group=a&group=b"}

// malformedURL: Harness.URL with malformed or repeated query parameters
// appended fails mq.Open with ErrInvalidURL, at once.
func malformedURL(t *testing.T, e *env) {
	if e.h.URL == "" {
		t.Skip("skipped: Harness.URL is empty")
	}
	base := e.h.URL
	if strings.Contains(base, "group=") {
		t.Skip("skipped: Harness.URL already sets group")
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	for _, q := range malformedQueries {
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		start := time.Now()
		b, err := mq.Open(ctx, base+sep+q)
		took := time.Since(start)
		if err == nil {
			_ = b.Close(ctx)
		}
		cancel()
		if !errors.Is(err, mq.ErrInvalidURL) {
			t.Errorf("Open(Harness.URL + %q): got %v, want ErrInvalidURL", sep+q, err)
		} else if took > e.grace {
			t.Errorf("Open(Harness.URL + %q) took %v to fail, want at once (within %v)", sep+q, took, e.grace)
		}
	}
}
