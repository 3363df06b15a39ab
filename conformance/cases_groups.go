package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// groupCases check how groups share and copy messages, per-key order and
// the concurrency limit.
var groupCases = []testCase{
	{name: "competing-consumers", run: competingConsumers},
	{name: "fan-out", needs: []mq.Capability{mq.CapFanOut}, run: fanOut},
	{name: "no-fan-out", lacks: []mq.Capability{mq.CapFanOut}, run: noFanOut},
	{name: "replay", needs: []mq.Capability{mq.CapReplay}, run: replay},
	{name: "no-replay", lacks: []mq.Capability{mq.CapReplay}, run: noReplay},
	{name: "order-per-key", needs: []mq.Capability{mq.CapOrderingByKey}, run: orderPerKey},
	{name: "order-per-key-redelivery", needs: []mq.Capability{mq.CapOrderingByKey}, run: orderPerKeyRedelivery},
	{name: "concurrency-limit", run: concurrencyLimit},
	{name: "default-concurrency", run: defaultConcurrency},
}

// competingConsumers: three connections in one group split the group's
// messages: every message is acknowledged, none by two consumers, and
// every consumer does some of the work.
func competingConsumers(t *testing.T, e *env) {
	const consumers = 3
	pub := e.open(t)
	e.provision(t, pub, e.topic, e.group)
	c := newCollector()
	for i := range consumers {
		e.sub(t, e.open(t), c.handler(i, nil))
	}
	msgs := numbered(60, "work")
	e.publish(t, pub, e.topic, msgs...)
	all := ids(msgs)
	e.awaitAcked(t, c, "shared by three consumers", all)

	// A consumer may join its group after the others have taken the
	// first messages (Kafka rebalances take seconds), so keep publishing
	// small waves until each has had a share: at most maxWaves, spread
	// over the timeout, so a slow join is waited for without flooding
	// the broker.
	const maxWaves = 100
	busy := func() []int {
		n := make([]int, consumers)
		for _, r := range c.all() {
			n[r.consumer]++
		}
		return n
	}
	pace := time.NewTicker(max(e.timeout/maxWaves, 10*time.Millisecond))
	defer pace.Stop()
	for wave := 0; slices.Contains(busy(), 0) && wave < maxWaves; wave++ {
		<-pace.C
		more := numbered(10, "wave"+strconv.Itoa(wave))
		e.publish(t, pub, e.topic, more...)
		all = append(all, ids(more)...)
		e.awaitAcked(t, c, "a further wave", ids(more))
	}
	if n := busy(); slices.Contains(n, 0) {
		t.Errorf("deliveries per consumer: got %v, want every consumer of the group to get some", n)
	} else {
		t.Logf("deliveries per consumer: %v", n)
	}
	for _, id := range all {
		if n := c.acks(id); n != 1 {
			t.Errorf("message %s acknowledged %d times, want once: consumers of one group must not both handle it", id, n)
		}
	}
}

// fanOut: each of three groups receives every message.
func fanOut(t *testing.T, e *env) {
	pub := e.open(t)
	groups := []string{e.group, e.newGroup(), e.newGroup()}
	e.provision(t, pub, e.topic, groups...)
	msgs := numbered(20, "fan")
	e.publish(t, pub, e.topic, msgs...)
	cs := make([]*collector, len(groups))
	for i, g := range groups {
		cs[i] = newCollector()
		e.subscribe(t, e.open(t), e.topic, cs[i].handler(i, nil), mq.Group(g))
	}
	for i, g := range groups {
		e.awaitAcked(t, cs[i], "group "+g, ids(msgs))
		for _, r := range cs[i].all() {
			if r.msg.Group != g {
				t.Errorf("subscriber of group %s got a message with Group %q", g, r.msg.Group)
			}
		}
	}
}

// noFanOut: a broker without FanOut rejects a second group on a topic
// with ErrNotSupported, and the first group keeps working.
func noFanOut(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil))
	second := e.subscribe(t, b, e.topic, c.handler(1, nil), mq.Group(e.newGroup()))
	if err := e.wait(t, second); !errors.Is(err, mq.ErrNotSupported) {
		t.Errorf("Subscribe with a second group on a broker without FanOut: got %v, want ErrNotSupported", err)
	}
	m := &mq.Message{Body: []byte("first group")}
	e.publish(t, b, e.topic, m)
	e.awaitAcked(t, c, "the first group", []string{m.ID})
}

// replay: a group created after messages were published, starting at
// mq.Earliest, reads them.
func replay(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic) // the topic only: the group must not exist yet
	msgs := numbered(10, "history")
	e.publish(t, b, e.topic, msgs...)
	c := newCollector()
	e.sub(t, e.open(t), c.handler(0, nil), mq.StartAt(mq.Earliest))
	e.awaitAcked(t, c, "history read by a new group", ids(msgs))
}

// noReplay: a broker without Replay rejects StartAt(Earliest) with
// ErrNotSupported rather than silently starting at the latest message.
func noReplay(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic)
	s := e.sub(t, b, newCollector().handler(0, nil), mq.StartAt(mq.Earliest))
	if err := e.wait(t, s); !errors.Is(err, mq.ErrNotSupported) {
		t.Errorf("Subscribe with StartAt(Earliest) on a broker without Replay: got %v, want ErrNotSupported", err)
	}
}

// keyed returns n messages for each key, interleaved key by key, with
// their per-key sequence number in the seq header.
func keyed(keys []string, n int) []*mq.Message {
	var msgs []*mq.Message
	for i := range n {
		for _, k := range keys {
			msgs = append(msgs, &mq.Message{
				Key:    k,
				Body:   []byte(k + "-" + strconv.Itoa(i)),
				Header: map[string]string{"seq": strconv.Itoa(i)},
			})
		}
	}
	return msgs
}

// handledOrder returns, per key, the seq and attempt of each handler run
// in the order the runs started.
func handledOrder(c *collector) map[string][]string {
	out := map[string][]string{}
	for _, r := range c.all() {
		out[r.msg.Key] = append(out[r.msg.Key], fmt.Sprintf("%d/%d", seq(r.msg), r.msg.Attempt))
	}
	return out
}

// orderPerKey: with four handlers running at once, each key's messages
// are still handled one at a time in publish order.
func orderPerKey(t *testing.T, e *env) {
	keys := []string{"a", "b", "c", "d"}
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := keyed(keys, 25)
	e.publish(t, b, e.topic, msgs...)
	c := newCollector()
	e.sub(t, b, c.handler(0, nil), mq.Concurrency(4))
	e.awaitAcked(t, c, "keyed messages", ids(msgs))
	got := handledOrder(c)
	for _, k := range keys {
		var want []string
		for i := range 25 {
			want = append(want, fmt.Sprintf("%d/1", i))
		}
		if !slices.Equal(got[k], want) {
			t.Errorf("key %s: handled seq/attempt: got %v, want %v", k, got[k], want)
		}
	}
}

// orderPerKeyRedelivery: while one message of a key is failing and being
// redelivered, later messages of that key wait; other keys go on.
func orderPerKeyRedelivery(t *testing.T, e *env) {
	const n, failing = 10, 3
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := keyed([]string{"a", "b"}, n)
	e.publish(t, b, e.topic, msgs...)
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		if m.Key == "a" && seq(m) == failing && m.Attempt < 3 {
			return errNack
		}
		return nil
	}), mq.Concurrency(4), constantBackoff(50*time.Millisecond))
	e.awaitAcked(t, c, "keyed messages, one failing twice", ids(msgs))
	got := handledOrder(c)
	var wantA, wantB []string
	for i := range n {
		wantA = append(wantA, fmt.Sprintf("%d/1", i))
		if i == failing {
			wantA = append(wantA, fmt.Sprintf("%d/2", i), fmt.Sprintf("%d/3", i))
		}
		wantB = append(wantB, fmt.Sprintf("%d/1", i))
	}
	if !slices.Equal(got["a"], wantA) {
		t.Errorf("key a (message %d fails twice): handled seq/attempt: got %v, want %v", failing, got["a"], wantA)
	}
	if !slices.Equal(got["b"], wantB) {
		t.Errorf("key b: handled seq/attempt: got %v, want %v", got["b"], wantB)
	}
}

// peak tracks the most handlers seen running at once.
type peak struct {
	now, max atomic.Int32
}

func (p *peak) enter() int32 {
	n := p.now.Add(1)
	for {
		m := p.max.Load()
		if n <= m || p.max.CompareAndSwap(m, n) {
			return n
		}
	}
}

func (p *peak) leave() { p.now.Add(-1) }

// concurrencyLimit: with Concurrency(4) and messages of distinct keys,
// exactly four handlers run at once: the limit is reached and never
// exceeded.
func concurrencyLimit(t *testing.T, e *env) {
	const limit = 4
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := numbered(3*limit, "conc") // distinct keys, so ordering does not serialize them
	e.publish(t, b, e.topic, msgs...)

	var p peak
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	// Handlers hold until the limit is reached, then for the grace
	// period, in which a handler over the limit would show up; and at
	// most until the timeout, so a broker that never reaches the limit
	// fails without hanging.
	stopAll := time.AfterFunc(e.timeout, open)
	defer stopAll.Stop()
	var graceTimer *time.Timer
	var timerMu sync.Mutex
	defer func() {
		timerMu.Lock()
		defer timerMu.Unlock()
		if graceTimer != nil {
			graceTimer.Stop()
		}
	}()
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		defer p.leave()
		if p.enter() == limit {
			timerMu.Lock()
			if graceTimer == nil {
				graceTimer = time.AfterFunc(e.grace, open)
			}
			timerMu.Unlock()
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}), mq.Concurrency(limit))
	e.awaitAcked(t, c, "handled under Concurrency(4)", ids(msgs))
	if got := p.max.Load(); got != limit {
		t.Errorf("most handlers running at once under Concurrency(%d): got %d, want %d", limit, got, limit)
	}
}

// defaultConcurrency: without a Concurrency option one handler runs at a
// time.
func defaultConcurrency(t *testing.T, e *env) {
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	msgs := numbered(6, "serial")
	e.publish(t, b, e.topic, msgs...)
	var p peak
	second := make(chan struct{})
	var once, first sync.Once
	c := newCollector()
	e.sub(t, b, c.handler(0, func(ctx context.Context, m *mq.Message) error {
		defer p.leave()
		if p.enter() > 1 {
			once.Do(func() { close(second) })
		}
		// The first handler holds for the grace period, long enough for a
		// second handler to start if the default allowed one.
		first.Do(func() {
			grace := time.NewTimer(e.grace)
			defer grace.Stop()
			select {
			case <-second:
			case <-grace.C:
			case <-ctx.Done():
			}
		})
		return nil
	}))
	e.awaitAcked(t, c, "handled with the default concurrency", ids(msgs))
	if got := p.max.Load(); got != 1 {
		t.Errorf("most handlers running at once by default: got %d, want 1", got)
	}
}
