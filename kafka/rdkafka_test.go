package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/describegroups"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/internal/brokertest"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// The librdkafka side of the interoperability tests: confluent-kafka from
// PyPI (its wheel bundles librdkafka), in the virtualenv scripts/pyenv
// makes under .cache, driving kafka/testdata/rdkafka/rdkafka.py. The
// consumer mode prints the lines MqJava prints, so javaProc runs it.

const rdkafkaScript = "testdata/rdkafka/rdkafka.py"

// startRdkafka runs rdkafka.py in mode against the test brokers until the
// test ends (see startProc).
func startRdkafka(t *testing.T, py, name, mode string, args ...string) *javaProc {
	t.Helper()
	full := append([]string{rdkafkaScript, mode, strings.Join(kafkatest.Addrs(t), ",")}, args...)
	return startProc(t, "rdkafka "+name, exec.Command(py, full...))
}

// runRdkafka runs rdkafka.py in mode to its end, bounded by 90s, and
// returns its output lines. An error it reports fails the test.
func runRdkafka(t *testing.T, py, mode string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	full := append([]string{rdkafkaScript, mode, strings.Join(kafkatest.Addrs(t), ",")}, args...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, py, full...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rdkafka.py %s: %v\n%s%s", mode, err, out, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "EXCEPTION") {
			t.Errorf("rdkafka.py %s: %s\n%s", mode, sc.Text(), stderr.String())
		}
		lines = append(lines, sc.Text())
	}
	return lines
}

// shareOf matches an ASSIGNED line with some but not all of 6 partitions.
func shareOf(l string) bool {
	rest, ok := cutPrefixSpace(l, "ASSIGNED")
	n := len(parseInts(rest))
	return ok && n > 0 && n < 6
}

// groupProtocol returns the protocol type, the protocol (the assignor
// the coordinator chose) and the member count of group.
func groupProtocol(t *testing.T, group string) (string, string, int) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	r, err := tr.RoundTrip(ctx, kafkago.TCP(kafkatest.Addrs(t)...), &describegroups.Request{Groups: []string{group}})
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	res, ok := r.(*describegroups.Response)
	if !ok || len(res.Groups) != 1 || res.Groups[0].ErrorCode != 0 {
		t.Fatalf("DescribeGroups: got %#v", r)
	}
	g := res.Groups[0]
	return g.ProtocolType, g.ProtocolData, len(g.Members)
}

// TestRdkafkaSharesGroup: a librdkafka consumer with its default
// assignors (range, roundrobin), or range alone, and an mq subscriber in
// one consumer group on a 6-partition topic, whichever joins first (and so
// leads and assigns for both): the coordinator settles on range, each gets one contiguous
// half (range's shape; roundrobin would interleave), every message is
// consumed once by the group, and librdkafka reports no error.
func TestRdkafkaSharesGroup(t *testing.T) {
	py := brokertest.Python(t, "librdkafka interop test")
	for _, tc := range []struct{ first, strategy string }{
		{"rdkafka", ""},
		{"mq", ""},
		{"mq", "range"},
	} {
		name := tc.first + " first"
		if tc.strategy != "" {
			name += " " + tc.strategy + " only"
		}
		t.Run(name, func(t *testing.T) {
			topic, group := uniqueName(t, "rshare"), uniqueName(t, "g")
			args := []string{topic, group}
			if tc.strategy != "" {
				args = append(args, tc.strategy)
			}
			b := open(t, "exact_group_id=true&partitions=6")
			provisionKafka(t, b, topic)
			got := newSeen()
			var rk *javaProc
			startMQ := func() {
				subscribe(t, b, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
			}
			if tc.first == "rdkafka" {
				rk = startRdkafka(t, py, "consumer", "consume", args...)
				rk.waitFor(30*time.Second, "assignment of 6 partitions", func(l string) bool { return l == "ASSIGNED 0,1,2,3,4,5" })
				startMQ()
			} else {
				startMQ()
				time.Sleep(2 * time.Second) // let mq form the group alone
				rk = startRdkafka(t, py, "consumer", "consume", args...)
			}
			share := rk.waitFor(30*time.Second, "a share of the partitions", shareOf)
			if share != "ASSIGNED 0,1,2" && share != "ASSIGNED 3,4,5" {
				t.Errorf("librdkafka got %q, want one contiguous half (range assignor)", share)
			}
			ptype, proto, members := groupProtocol(t, group)
			if ptype != "consumer" || proto != "range" || members != 2 {
				t.Errorf("group: got protocol type %q, assignor %q, %d members; want consumer, range, 2", ptype, proto, members)
			}
			time.Sleep(time.Second) // mq's generation starts its fetchers
			const n = 120
			publishNumbered(t, b, topic, "m", 0, n)

			tally := func() map[string]int {
				handled := map[string]int{}
				for _, r := range rk.records() {
					handled[r]++
				}
				got.mu.Lock()
				defer got.mu.Unlock()
				for body, c := range got.bodies {
					handled[body] += c
				}
				return handled
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				handled := tally()
				all := true
				for i := range n {
					all = all && handled["m-"+strconv.Itoa(i)] > 0
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not every message consumed within 30s: mq %d, librdkafka %d\n%s", got.count(), len(rk.records()), rk.output())
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // a duplicate would show now
			handled := tally()
			dups := 0
			for i := range n {
				if c := handled["m-"+strconv.Itoa(i)]; c > 1 {
					dups += c - 1
				}
			}
			t.Logf("librdkafka holds %s and consumed %d; mq consumed %d; %d duplicates", share, len(rk.records()), got.count(), dups)
			if len(handled) != n {
				t.Errorf("the group handled %d distinct messages, want %d", len(handled), n)
			}
			if dups != 0 {
				t.Errorf("%d messages handled twice in a stable group, want 0", dups)
			}
			if got.count() == 0 || len(rk.records()) == 0 {
				t.Errorf("mq consumed %d, librdkafka %d: want a share each", got.count(), len(rk.records()))
			}
			rk.checkNoException()
			if err := rk.stop(); err != nil {
				t.Errorf("librdkafka consumer exit: %v\n%s", err, rk.output())
			}
		})
	}
}

// TestRdkafkaRollingHandOver: a group moves librdkafka → mq → librdkafka
// one member at a time while messages keep arriving, and nothing is lost:
// committed offsets carry over in both directions (few duplicates, no
// replay from the start).
func TestRdkafkaRollingHandOver(t *testing.T) {
	py := brokertest.Python(t, "librdkafka interop test")
	topic, group := uniqueName(t, "rroll"), uniqueName(t, "g")
	b := open(t, "exact_group_id=true&partitions=6")
	provisionKafka(t, b, topic)
	ctx := ctxFor(t, 2*time.Minute)

	// Publish 10 messages every 100ms until told to stop.
	published := make(chan int, 1)
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
			select {
			case <-published:
			default:
			}
			published <- i + 10
			if i > 5000 {
				pubDone <- errors.New("publisher ran for too long")
				return
			}
		}
	}()

	rk1 := startRdkafka(t, py, "first", "consume", topic, group)
	rk1.waitFor(30*time.Second, "assignment", func(l string) bool { return l == "ASSIGNED 0,1,2,3,4,5" })
	rk1.waitFor(30*time.Second, "records", func(l string) bool { return strings.HasPrefix(l, "RECORD") })

	got := newSeen()
	stopMQ := subscribe(t, b, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
	rk1.waitFor(30*time.Second, "a share after mq joined", shareOf)
	got.waitCount(t, 30*time.Second, 1, "mq beside librdkafka")
	rk1.checkNoException()
	if err := rk1.stop(); err != nil {
		t.Fatalf("first librdkafka consumer exit: %v\n%s", err, rk1.output())
	}
	n := got.count()
	got.waitCount(t, 30*time.Second, n+50, "mq alone")

	rk2 := startRdkafka(t, py, "second", "consume", topic, group)
	rk2.waitFor(30*time.Second, "a share beside mq", shareOf)
	time.Sleep(time.Second)
	if err := stopMQ(); err == nil {
		t.Errorf("Subscribe after its ctx was canceled: got nil, want an error")
	}
	rk2.waitFor(30*time.Second, "all partitions after mq left", func(l string) bool { return l == "ASSIGNED 0,1,2,3,4,5" })
	time.Sleep(time.Second)
	close(stopPub)
	if err := <-pubDone; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	total := <-published

	deadline := time.Now().Add(30 * time.Second)
	var missing []string
	for {
		missing = missing[:0]
		handled := map[string]int{}
		for _, r := range rk1.records() {
			handled[r]++
		}
		for _, r := range rk2.records() {
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
			t.Logf("%d messages: librdkafka %d, mq %d, librdkafka %d; %d handled twice", total, len(rk1.records()), got.count(), len(rk2.records()), dups)
			// A hand-over that did not carry the committed offsets would
			// replay from the start (auto.offset.reset=earliest).
			if dups > total/10 {
				t.Errorf("%d of %d messages handled twice: committed offsets did not carry over", dups, total)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages never handled (first: %v)\n%s", len(missing), total, missing[:min(10, len(missing))], rk2.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	rk2.checkNoException()
	if err := rk2.stop(); err != nil {
		t.Errorf("second librdkafka consumer exit: %v\n%s", err, rk2.output())
	}
}

// TestRdkafkaCooperativeStickyGroup: mq offers only the range assignor,
// so it cannot join a group whose librdkafka member allows only
// cooperative-sticky. Subscribe returns at once with an error that names
// both assignors, and the librdkafka member keeps its partitions.
func TestRdkafkaCooperativeStickyGroup(t *testing.T) {
	py := brokertest.Python(t, "librdkafka interop test")
	topic, group := uniqueName(t, "rcoop"), uniqueName(t, "g")
	b := open(t, "exact_group_id=true&partitions=6")
	provisionKafka(t, b, topic)
	rk := startRdkafka(t, py, "consumer", "consume", topic, group, "cooperative-sticky")
	rk.waitFor(30*time.Second, "assignment of 6 partitions", func(l string) bool { return l == "ASSIGNED 0,1,2,3,4,5" })

	ctx := ctxFor(t, 30*time.Second)
	err := b.Subscribe(ctx, topic, func(context.Context, *mq.Message) error { return nil }, mq.Group(group))
	if ctx.Err() != nil {
		t.Fatalf("Subscribe: still trying to join after 30s (%v); want an error at once", err)
	}
	if !errors.Is(err, kafkago.InconsistentGroupProtocol) {
		t.Errorf("Subscribe: got %v, want an error wrapping kafka-go's InconsistentGroupProtocol", err)
	}
	for _, want := range []string{"cooperative-sticky", `"range"`, group} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Subscribe: got %v, want an error naming %s", err, want)
		}
	}
	t.Logf("Subscribe: %v", err)
	time.Sleep(time.Second) // a rebalance would show now
	if parts, _ := rk.assigned(); len(parts) != 6 {
		t.Errorf("librdkafka holds %v after mq's attempt, want all 6 partitions", parts)
	}
	rk.checkNoException()
	if err := rk.stop(); err != nil {
		t.Errorf("librdkafka consumer exit: %v\n%s", err, rk.output())
	}
}

// rdkafkaRecord is one record as rdkafka.py read prints it; hex strings
// are nil for null.
type rdkafkaRecord struct {
	Partition int          `json:"partition"`
	Offset    int64        `json:"offset"`
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   [][2]*string `json:"headers"`
}

// readRdkafka reads n records of topic with librdkafka, from the start.
func readRdkafka(t *testing.T, py, topic string, n int) []rdkafkaRecord {
	t.Helper()
	var out []rdkafkaRecord
	for _, l := range runRdkafka(t, py, "read", topic, strconv.Itoa(n)) {
		var r rdkafkaRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("rdkafka.py read printed %q: %v", l, err)
		}
		out = append(out, r)
	}
	if len(out) != n {
		t.Fatalf("rdkafka.py read: got %d records, want %d", len(out), n)
	}
	return out
}

// TestRdkafkaBinaryRecords: records a librdkafka producer wrote with
// binary keys, values and header values (an empty and a null one
// included) arrive byte-exact, with the documented foreign-record ID; and
// republished unchanged through mq they reach a librdkafka consumer with
// the same bytes.
func TestRdkafkaBinaryRecords(t *testing.T) {
	py := brokertest.Python(t, "librdkafka interop test")
	topic, topic2, group := uniqueName(t, "rbin"), uniqueName(t, "rbin2"), uniqueName(t, "g")
	b := open(t, "partitions=1")
	provisionKafka(t, b, topic)
	provisionKafka(t, b, topic2)
	var offsets []int64
	for _, l := range runRdkafka(t, py, "binary", topic) {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "DELIVERED" && f[1] == "0" {
			off, _ := strconv.ParseInt(f[2], 10, 64)
			offsets = append(offsets, off)
		}
	}
	if len(offsets) != 3 {
		t.Fatalf("rdkafka.py binary: got %d delivery reports for partition 0, want 3", len(offsets))
	}
	got := newSeen()
	subscribe(t, b, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
	got.waitCount(t, 30*time.Second, 3, "delivery")

	keys := []string{"\x00\x01\xfe\xff", "\xff\xff\xff\xff\xff\xff\xff\xff", "\x80"}
	got.mu.Lock()
	msgs := slices.Clone(got.msgs)
	got.mu.Unlock()
	if len(msgs) != 3 {
		t.Fatalf("delivered %d messages, want 3", len(msgs))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("kafka:%s:0:%d", topic, offsets[i]); m.ID != want {
			t.Errorf("message %d ID: got %q, want %q", i, m.ID, want)
		}
		if m.Key != keys[i] {
			t.Errorf("message %d key: got %x, want %x", i, m.Key, keys[i])
		}
		if want := []byte{0, 0xff, 0xfe, byte(i)}; !bytes.Equal(m.Body, want) {
			t.Errorf("message %d body: got %x, want %x", i, m.Body, want)
		}
		want := map[string]string{"bin": string([]byte{0, 0xff, 0x80, byte(i)}), "utf": "héllo", "empty": "", "null": ""}
		if !mapsEqual(m.Header, want) {
			t.Errorf("message %d headers: got %q, want %q", i, m.Header, want)
		}
	}

	if err := b.Publish(ctxFor(t, 30*time.Second), topic2, msgs...); err != nil {
		t.Fatalf("Publish of the delivered librdkafka records, unchanged: %v", err)
	}
	for i, r := range readRdkafka(t, py, topic2, 3) {
		m := msgs[i]
		if strOf(r.Key) != hex.EncodeToString([]byte(m.Key)) || strOf(r.Value) != hex.EncodeToString(m.Body) {
			t.Errorf("republished record %d: librdkafka got key %s value %s, want %x %x", i, strOf(r.Key), strOf(r.Value), m.Key, m.Body)
		}
		hdr := map[string]string{}
		for _, h := range r.Headers {
			v, err := hex.DecodeString(strOf(h[1]))
			if err != nil || h[0] == nil {
				t.Fatalf("republished record %d: header %v", i, h)
			}
			hdr[*h[0]] = string(v)
		}
		want := map[string]string{"mq-id": m.ID}
		for k, v := range m.Header {
			want[k] = v
		}
		if !mapsEqual(hdr, want) {
			t.Errorf("republished record %d: librdkafka got headers %q, want %q", i, hdr, want)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRdkafkaPartitioner: mq puts every key, text or binary, in the
// partition librdkafka's Java-compatible partitioner (murmur2_random)
// puts it in, on topics of the same partition count.
func TestRdkafkaPartitioner(t *testing.T) {
	py := brokertest.Python(t, "librdkafka interop test")
	topicRK, topicMQ := uniqueName(t, "rkeys"), uniqueName(t, "mkeys")
	b := open(t, "partitions=6")
	provisionKafka(t, b, topicRK)
	provisionKafka(t, b, topicMQ)
	var keys []string
	for i := range 40 {
		keys = append(keys, "key-"+strconv.Itoa(i))
	}
	keys = append(keys, "\x00", "\xff\xff\xff\xff", "\x00\x00\x00\x00\x00\x00\x00\xc8", "ünïcode", strings.Repeat("long", 100))
	hexKeys := make([]string, len(keys))
	msgs := make([]*mq.Message, len(keys))
	for i, k := range keys {
		hexKeys[i] = hex.EncodeToString([]byte(k))
		msgs[i] = mq.NewMessage([]byte("v"))
		msgs[i].Key = k
	}

	want := map[string]int{}
	for _, l := range runRdkafka(t, py, "keys", append([]string{topicRK}, hexKeys...)...) {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "KEY" {
			want[f[1]], _ = strconv.Atoi(f[2])
		}
	}
	if len(want) != len(keys) {
		t.Fatalf("rdkafka.py keys: got %d partitions, want %d", len(want), len(keys))
	}
	if err := b.Publish(ctxFor(t, 30*time.Second), topicMQ, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	used := map[int]bool{}
	for _, r := range readRdkafka(t, py, topicMQ, len(keys)) {
		k := strOf(r.Key)
		used[r.Partition] = true
		if w, ok := want[k]; !ok || r.Partition != w {
			t.Errorf("key %s: mq put it in partition %d, librdkafka's murmur2_random in %d (known %v)", k, r.Partition, w, ok)
		}
	}
	if len(used) < 2 {
		t.Errorf("all keys landed in partitions %v: the test cannot tell partitioners apart", used)
	}
}

// TestRdkafkaTransactions: records of a librdkafka transactional producer
// (commit 3, abort 3, commit 2) reach mq as read_committed delivers them:
// the 5 committed records, no aborted record, no transaction marker; and
// the group's committed offset reaches the end of the log.
func TestRdkafkaTransactions(t *testing.T) {
	py := brokertest.Python(t, "librdkafka interop test")
	topic, group := uniqueName(t, "rtxn"), uniqueName(t, "g")
	b := open(t, "exact_group_id=true&partitions=1")
	provisionKafka(t, b, topic)
	if lines := runRdkafka(t, py, "txn", topic); !slices.Contains(lines, "DONE") {
		t.Fatalf("rdkafka.py txn printed %q, want DONE", lines)
	}
	const end = 11 // 8 records and 3 markers
	want := []string{"c1-0", "c1-1", "c1-2", "c2-0", "c2-1"}
	got := newSeen()
	stop := subscribe(t, b, topic, got.handler, mq.Group(group), mq.StartAt(mq.Earliest))
	got.waitCount(t, 30*time.Second, len(want), "delivery")
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
	got.mu.Lock()
	var bodies []string
	for _, m := range got.msgs {
		bodies = append(bodies, string(m.Body))
	}
	got.mu.Unlock()
	if !slices.Equal(bodies, want) {
		t.Errorf("delivered %q, want %q", bodies, want)
	}
	if err := stop(); err == nil {
		t.Errorf("Subscribe after its ctx was canceled: got nil, want an error")
	}
}
