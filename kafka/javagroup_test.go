package kafka_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// seen collects the bodies an mq subscriber handled.
type seen struct {
	mu     sync.Mutex
	bodies map[string]int
	msgs   []*mq.Message
}

func newSeen() *seen { return &seen{bodies: map[string]int{}} }

func (s *seen) handler(ctx context.Context, m *mq.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies[string(m.Body)]++
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *seen) has(body string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies[body] > 0
}

// waitCount waits up to d for n handled messages.
func (s *seen) waitCount(t *testing.T, d time.Duration, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for s.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages handled after %v, want %d", what, s.count(), d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishNumbered publishes bodies prefix-0 .. prefix-(n-1), keyed so
// that they spread over the partitions.
func publishNumbered(t *testing.T, b mq.Broker, topic, prefix string, from, n int) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	msgs := make([]*mq.Message, 0, n)
	for i := from; i < from+n; i++ {
		m := mq.NewMessage([]byte(prefix + "-" + strconv.Itoa(i)))
		m.Key = "k" + strconv.Itoa(i)
		msgs = append(msgs, m)
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("Publish: got %v, want nil", err)
	}
}

// TestJavaConsumerSharesGroup: a Java KafkaConsumer (default assignors
// range and cooperative-sticky) and an mq subscriber in one consumer group
// on a 6-partition topic both get partitions and consume, whichever joins
// first (and so leads the group and assigns for both), and the Java client
// throws nothing. Regression test for issue 17: kafka-go's ConsumerGroup
// wrote subscriptions Java could not parse ("Buffer underflow while
// parsing consumer protocol's subscription", kafka-go #762).
func TestJavaConsumerSharesGroup(t *testing.T) {
	cp := javaClient(t)
	for _, first := range []string{"java", "mq"} {
		t.Run(first+" first", func(t *testing.T) {
			topic, group := uniqueName(t, "jshare"), uniqueName(t, "g")
			b := open(t, "exact_group_id=true&partitions=6")
			ctx := ctxFor(t, 2*time.Minute)
			if err := mq.Provision(ctx, b, topic); err != nil {
				t.Fatalf("Provision: got %v, want nil", err)
			}
			got := newSeen()
			var java *javaProc
			startMQ := func() {
				subscribe(t, b, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
			}
			if first == "java" {
				java = startJava(t, cp, "consumer", "consume", topic, group)
				java.waitFor(60*time.Second, "assignment of 6 partitions", func(l string) bool { return l == "ASSIGNED 0,1,2,3,4,5" })
				startMQ()
			} else {
				startMQ()
				time.Sleep(2 * time.Second) // let mq form the group alone
				java = startJava(t, cp, "consumer", "consume", topic, group)
			}
			// Wait for a generation in which Java holds some but not all
			// partitions.
			java.waitFor(60*time.Second, "a share of the partitions", func(l string) bool {
				rest, ok := cutPrefixSpace(l, "ASSIGNED")
				n := len(parseInts(rest))
				return ok && n > 0 && n < 6
			})
			time.Sleep(time.Second) // mq's generation starts its fetchers
			publishNumbered(t, b, topic, "m", 0, 120)

			deadline := time.Now().Add(60 * time.Second)
			for {
				all := true
				javaGot := java.records()
				for i := range 120 {
					body := "m-" + strconv.Itoa(i)
					if !got.has(body) && !slices.Contains(javaGot, body) {
						all = false
						break
					}
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not every message consumed within 60s: mq %d, java %d\n%s", got.count(), len(javaGot), java.output())
				}
				time.Sleep(50 * time.Millisecond)
			}
			parts, _ := java.assigned()
			t.Logf("java holds partitions %v and consumed %d; mq consumed %d", parts, len(java.records()), got.count())
			if got.count() == 0 {
				t.Errorf("mq consumed nothing; want a share")
			}
			if len(java.records()) == 0 {
				t.Errorf("java consumed nothing; want a share")
			}
			java.checkNoException()
			if err := java.stop(); err != nil {
				t.Errorf("java consumer exit: %v\n%s", err, java.output())
			}
		})
	}
}

func cutPrefixSpace(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return "", false
	}
	rest := s[len(prefix):]
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return rest, true
}

// TestJavaRollingHandOver: a group moves Java → mq → Java one member at a
// time while messages keep arriving, and nothing is lost: committed
// offsets carry over in both directions (few duplicates, no replay from
// the start).
func TestJavaRollingHandOver(t *testing.T) {
	cp := javaClient(t)
	topic, group := uniqueName(t, "jroll"), uniqueName(t, "g")
	b := open(t, "exact_group_id=true&partitions=6")
	ctx := ctxFor(t, 3*time.Minute)
	if err := mq.Provision(ctx, b, topic); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}

	// Publish 10 messages every 100ms until told to stop.
	var published int
	stopPub := make(chan struct{})
	pubDone := make(chan error, 1)
	go func() {
		for i := 0; ; i += 10 {
			select {
			case <-stopPub:
				pubDone <- nil
				return
			case <-time.After(100 * time.Millisecond):
			}
			msgs := make([]*mq.Message, 10)
			for j := range msgs {
				msgs[j] = mq.NewMessage([]byte("r-" + strconv.Itoa(i+j)))
				msgs[j].Key = "k" + strconv.Itoa(i+j)
			}
			if err := b.Publish(ctx, topic, msgs...); err != nil {
				pubDone <- err
				return
			}
			published = i + 10
			if i > 5000 {
				pubDone <- fmt.Errorf("publisher ran for too long")
				return
			}
		}
	}()

	java1 := startJava(t, cp, "first", "consume", topic, group)
	java1.waitFor(60*time.Second, "assignment", func(l string) bool { return l == "ASSIGNED 0,1,2,3,4,5" })
	java1.waitFor(30*time.Second, "records", func(l string) bool { return len(l) > 6 && l[:6] == "RECORD" })

	got := newSeen()
	stopMQ := subscribe(t, b, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
	java1.waitFor(60*time.Second, "a share after mq joined", func(l string) bool {
		rest, ok := cutPrefixSpace(l, "ASSIGNED")
		n := len(parseInts(rest))
		return ok && n > 0 && n < 6
	})
	got.waitCount(t, 60*time.Second, 1, "mq beside java")
	java1.checkNoException()
	if err := java1.stop(); err != nil {
		t.Fatalf("first java consumer exit: %v\n%s", err, java1.output())
	}
	n := got.count()
	got.waitCount(t, 60*time.Second, n+50, "mq alone")

	java2 := startJava(t, cp, "second", "consume", topic, group)
	java2.waitFor(60*time.Second, "a share beside mq", func(l string) bool {
		rest, ok := cutPrefixSpace(l, "ASSIGNED")
		n := len(parseInts(rest))
		return ok && n > 0 && n < 6
	})
	time.Sleep(time.Second)
	if err := stopMQ(); err == nil {
		t.Errorf("Subscribe after its ctx was canceled: got nil, want an error")
	}
	java2.waitFor(60*time.Second, "all partitions after mq left", func(l string) bool { return l == "ASSIGNED 0,1,2,3,4,5" })
	time.Sleep(time.Second)
	close(stopPub)
	if err := <-pubDone; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	total := published

	deadline := time.Now().Add(60 * time.Second)
	var missing []string
	for {
		missing = missing[:0]
		handled := map[string]int{}
		for _, r := range java1.records() {
			handled[r]++
		}
		for _, r := range java2.records() {
			handled[r]++
		}
		got.mu.Lock()
		for body, c := range got.bodies {
			handled[body] += c
		}
		got.mu.Unlock()
		dups := 0
		for i := range total {
			switch c := handled["r-"+strconv.Itoa(i)]; {
			case c == 0:
				missing = append(missing, "r-"+strconv.Itoa(i))
			case c > 1:
				dups += c - 1
			}
		}
		if len(missing) == 0 {
			t.Logf("%d messages: java %d, mq %d, java %d; %d handled twice", total, len(java1.records()), got.count(), len(java2.records()), dups)
			// A hand-over that did not carry the committed offsets would
			// replay from the start (auto.offset.reset=earliest).
			if dups > total/10 {
				t.Errorf("%d of %d messages handled twice: committed offsets did not carry over", dups, total)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages never handled (first: %v)\n%s", len(missing), total, missing[:min(10, len(missing))], java2.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	java2.checkNoException()
	if err := java2.stop(); err != nil {
		t.Errorf("second java consumer exit: %v\n%s", err, java2.output())
	}
}

// TestJavaTransactions: records of a transactional Java producer (commit
// 3, abort 3, commit 2) reach mq as the Java consumer's read_committed
// would deliver them: the 5 committed records, no aborted record and no
// transaction marker; and the group's committed offset reaches the end of
// the log, markers included, so the group shows no lag. With
// isolation=read_uncommitted the aborted records come too, the markers
// never. Regression test for issue 17 (kafka-go #1332).
func TestJavaTransactions(t *testing.T) {
	cp := javaClient(t)
	topic := uniqueName(t, "jtxn")
	b := open(t, "exact_group_id=true&partitions=1")
	ctx := ctxFor(t, 2*time.Minute)
	if err := mq.Provision(ctx, b, topic); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	prod := startJava(t, cp, "txn producer", "txn", topic)
	if err := prod.wait(90 * time.Second); err != nil {
		t.Fatalf("java transactional producer: %v\n%s", err, prod.output())
	}
	const end = 11 // 8 records and 3 markers

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"c1-0", "c1-1", "c1-2", "c2-0", "c2-1"}},
		{"isolation=read_uncommitted", []string{"c1-0", "c1-1", "c1-2", "a-0", "a-1", "a-2", "c2-0", "c2-1"}},
	} {
		t.Run("query="+tc.query, func(t *testing.T) {
			group := uniqueName(t, "g")
			sb := open(t, "exact_group_id=true&"+tc.query)
			got := newSeen()
			stop := subscribe(t, sb, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
			got.waitCount(t, 60*time.Second, len(tc.want), "delivery")
			time.Sleep(2 * time.Second) // anything more would show now
			got.mu.Lock()
			var bodies []string
			for _, m := range got.msgs {
				bodies = append(bodies, string(m.Body))
				var km kafkago.Message
				if !m.As(&km) {
					t.Errorf("Message.As(*kafka.Message): got false, want true")
				} else if km.Topic != topic || km.Partition != 0 {
					t.Errorf("Message.As: got topic %q partition %d, want %q 0", km.Topic, km.Partition, topic)
				}
			}
			got.mu.Unlock()
			if !slices.Equal(bodies, tc.want) {
				t.Errorf("delivered %q, want %q", bodies, tc.want)
			}

			// The committed offset reaches the end of the log.
			deadline := time.Now().Add(30 * time.Second)
			for {
				off := committedOffset(t, topic, group)
				if off == end {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("committed offset: got %d, want %d (the end of the log)", off, end)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := stop(); err == nil {
				t.Errorf("Subscribe after its ctx was canceled: got nil, want an error")
			}
		})
	}
}

// committedOffset returns group's committed offset of partition 0 of topic.
func committedOffset(t *testing.T, topic, group string) int64 {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	c := &kafkago.Client{Addr: kafkago.TCP(kafkatest.Addrs(t)...)}
	fc, err := c.FindCoordinator(ctx, &kafkago.FindCoordinatorRequest{Key: group, KeyType: kafkago.CoordinatorKeyTypeConsumer})
	if err != nil || fc.Error != nil {
		t.Fatalf("FindCoordinator: %v %v", err, fc)
	}
	res, err := c.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{
		Addr:    kafkago.TCP(net.JoinHostPort(fc.Coordinator.Host, strconv.Itoa(fc.Coordinator.Port))),
		GroupID: group,
		Topics:  map[string][]int{topic: {0}},
	})
	if err != nil || res.Error != nil {
		t.Fatalf("OffsetFetch: %v %v", err, res)
	}
	for _, p := range res.Topics[topic] {
		if p.Partition == 0 {
			return p.CommittedOffset
		}
	}
	return -1
}

// TestJavaBinaryRecords: records a Java producer wrote with LongSerializer
// keys, binary values and binary header values arrive byte-exact.
func TestJavaBinaryRecords(t *testing.T) {
	cp := javaClient(t)
	topic, group := uniqueName(t, "jbin"), uniqueName(t, "g")
	b := open(t, "partitions=1")
	ctx := ctxFor(t, 2*time.Minute)
	if err := mq.Provision(ctx, b, topic); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	prod := startJava(t, cp, "binary producer", "binary", topic)
	if err := prod.wait(90 * time.Second); err != nil {
		t.Fatalf("java producer: %v\n%s", err, prod.output())
	}
	got := newSeen()
	subscribe(t, b, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
	got.waitCount(t, 60*time.Second, 3, "delivery")

	keys := []string{
		"\x01\x02\x03\x04\x05\x06\x07\x08",
		"\xff\xff\xff\xff\xff\xff\xff\xff",
		"\x00\x00\x00\x00\x00\x00\x00\x00",
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for i, m := range got.msgs {
		if m.Key != keys[i] {
			t.Errorf("message %d key: got %x, want %x", i, m.Key, keys[i])
		}
		if want := []byte{0, 0xff, 0xfe, byte(i)}; string(m.Body) != string(want) {
			t.Errorf("message %d body: got %x, want %x", i, m.Body, want)
		}
		want := map[string]string{"bin": string([]byte{0, 0xff, 0x80, byte(i)}), "utf": "héllo", "empty": ""}
		for k, v := range want {
			if got, ok := m.Header[k]; !ok || got != v {
				t.Errorf("message %d header %q: got %x (present %v), want %x", i, k, got, ok, v)
			}
		}
		if len(m.Header) != len(want) {
			t.Errorf("message %d headers: got %q, want %q", i, m.Header, want)
		}
	}
}
