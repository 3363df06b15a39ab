package kafka

import (
	"errors"
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

func TestOptionsFromURL(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c := mustOptions(t, "kafka://h1:9092,h2:9093")
		if got, want := strings.Join(c.Brokers, ","), "h1:9092,h2:9093"; got != want {
			t.Errorf("Brokers: got %q, want %q", got, want)
		}
		c = c.withDefaults()
		if c.Partitions != DefaultPartitions || c.ReplicationFactor != 1 || c.NoProvision || c.Acks != AcksAll ||
			c.BatchTimeout != DefaultBatchTimeout || c.StartAt != mq.Latest || c.TLS != nil || c.SASL != nil {
			t.Errorf("defaults: got %+v", c)
		}
	})
	t.Run("every parameter", func(t *testing.T) {
		c := mustOptions(t, "kafka://h:9092/?group=g&client_id=svc&provision=false&partitions=6&replication_factor=3&start_at=earliest"+
			"&acks=leader&compression=zstd&batch_size=10&batch_timeout=5ms&max_message_bytes=2048&dial_timeout=3s"+
			"&session_timeout=6s&heartbeat_interval=1s&rebalance_timeout=20s&commit_interval=1s&exact_group_id=true&tls=true")
		want := Options{Brokers: []string{"h:9092"}, Group: "g", ClientID: "svc", NoProvision: true, Partitions: 6,
			ReplicationFactor: 3, StartAt: mq.Earliest, Acks: AcksLeader, Compression: kafka.Zstd, BatchSize: 10,
			BatchTimeout: 5 * time.Millisecond, MaxMessageBytes: 2048, DialTimeout: 3 * time.Second,
			SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second, RebalanceTimeout: 20 * time.Second,
			CommitInterval: time.Second, ExactGroupID: true}
		got := c
		got.TLS = nil
		if got.Brokers[0] != want.Brokers[0] || got.Group != want.Group || got.ClientID != want.ClientID ||
			got.NoProvision != want.NoProvision || got.Partitions != want.Partitions ||
			got.ReplicationFactor != want.ReplicationFactor || got.StartAt != want.StartAt || got.Acks != want.Acks ||
			got.Compression != want.Compression || got.BatchSize != want.BatchSize || got.BatchTimeout != want.BatchTimeout ||
			got.MaxMessageBytes != want.MaxMessageBytes || got.DialTimeout != want.DialTimeout ||
			got.SessionTimeout != want.SessionTimeout || got.HeartbeatInterval != want.HeartbeatInterval ||
			got.RebalanceTimeout != want.RebalanceTimeout || got.CommitInterval != want.CommitInterval ||
			got.ExactGroupID != want.ExactGroupID {
			t.Errorf("got %+v,\nwant %+v", got, want)
		}
		if c.TLS == nil {
			t.Errorf("TLS: got nil, want a config for tls=true")
		}
	})
	t.Run("sasl password from env", func(t *testing.T) {
		t.Setenv("MQ_KAFKA_TEST_PASSWORD", "s3cret-value")
		c := mustOptions(t, "kafka://h:9092?sasl=scram-sha-512&sasl_user=alice&sasl_password_env=MQ_KAFKA_TEST_PASSWORD")
		if c.SASL == nil || c.SASL.Name() != "SCRAM-SHA-512" {
			t.Errorf("SASL: got %v, want SCRAM-SHA-512", c.SASL)
		}
		c = mustOptions(t, "kafka://bob:pw@h:9092?sasl=plain")
		if c.SASL == nil || c.SASL.Name() != "PLAIN" {
			t.Errorf("SASL: got %v, want PLAIN", c.SASL)
		}
	})

	bad := []struct{ url, mention string }{
		{"kafka:///?group=g", "no broker address"},
		{"kafka://h:9092?bogus=1", `unknown parameter "bogus"`},
		{"kafka://h:9092?partitions=zero", `"partitions"`},
		{"kafka://h:9092?partitions=0", `"partitions"`},
		{"kafka://h:9092?acks=2", `"acks"`},
		{"kafka://h:9092?start_at=middle", `"start_at"`},
		{"kafka://h:9092?replication=3", `parameter "replication" is spelled "replication_factor" now`},
		{"kafka://h:9092?start=earliest", `parameter "start" is spelled "start_at" now`},
		{"kafka://h:9092?tls=false&tls_ca_file=/nonexistent", `"tls"`},
		{"kafka://h:9092?tls_ca_file=/nonexistent", "tls_ca_file"},
		{"kafka://h:9092?batch_timeout=fast", `"batch_timeout"`},
		{"kafka://h:9092?group=a&group=b", `"group"`},
		{"kafka://h", "host:port"},
		{"kafka://h:9092/path", "unexpected path"},
		{"kafka://u:hunter2@h:9092", "without sasl"},
		{"kafka://h:9092?sasl=plain", "needs a user"},
		{"kafka://u:hunter2@h:9092?sasl=plain&sasl_password_file=/dev/null", "one way only"},
		{"kafka://h:9092?sasl=plain&sasl_user=u&sasl_password_env=MQ_KAFKA_TEST_UNSET_VAR", "not set"},
		{"kafka://h:9092?tls_cert_file=/nonexistent", "together"},
	}
	for _, tc := range bad {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			_, err = optionsFromURL(u)
			if !errors.Is(err, mq.ErrInvalidURL) {
				t.Fatalf("got %v, want an error wrapping mq.ErrInvalidURL", err)
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.HasPrefix(err.Error(), "kafka: ") {
				t.Errorf("got %q, want it to start with \"kafka: \" and mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("got %q, which contains the password", err)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	base := Options{Brokers: []string{"h:9092"}}
	if err := base.withDefaults().validate(); err != nil {
		t.Fatalf("defaults: got %v, want nil", err)
	}
	for name, o := range map[string]Options{
		"no brokers":           {},
		"broker without port":  {Brokers: []string{"h"}},
		"negative partitions":  {Brokers: base.Brokers, Partitions: -1},
		"negative batch size":  {Brokers: base.Brokers, BatchSize: -1},
		"negative timeout":     {Brokers: base.Brokers, BatchTimeout: -time.Millisecond},
		"negative max bytes":   {Brokers: base.Brokers, MaxMessageBytes: -1},
		"heartbeat too long":   {Brokers: base.Brokers, HeartbeatInterval: time.Minute},
		"unknown acks":         {Brokers: base.Brokers, Acks: AcksNone + 1},
		"unknown start":        {Brokers: base.Brokers, StartAt: mq.Earliest + 1},
		"group with a space":   {Brokers: base.Brokers, Group: "a b"},
		"negative replication": {Brokers: base.Brokers, ReplicationFactor: -1},
	} {
		err := o.withDefaults().validate()
		if !errors.Is(err, mq.ErrInvalidOption) || !strings.HasPrefix(err.Error(), "kafka: ") {
			t.Errorf("%s: got %v, want a \"kafka: \" error wrapping mq.ErrInvalidOption", name, err)
		}
	}
}

func mustOptions(t *testing.T, raw string) Options {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	c, err := optionsFromURL(u)
	if err != nil {
		t.Fatalf("optionsFromURL(%q): got %v, want nil", raw, err)
	}
	return c
}

func TestValidateTopic(t *testing.T) {
	long := strings.Repeat("a", 249)
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"orders", true}, {"a.b_c-D9", true}, {long, true},
		{"", false}, {".", false}, {"..", false}, {long + "a", false},
		{"has space", false}, {"slash/x", false}, {"colon:x", false}, {"ünïcode", false},
	} {
		err := validateTopic(tc.topic)
		if got := err == nil; got != tc.ok {
			t.Errorf("validateTopic(%q): got %v, want ok=%v", tc.topic, err, tc.ok)
		}
		if err != nil && !errors.Is(err, mq.ErrInvalidTopic) {
			t.Errorf("validateTopic(%q): got %v, want an error wrapping mq.ErrInvalidTopic", tc.topic, err)
		}
	}
}

// TestMurmur2MatchesJava pins kafka-go's Murmur2Balancer, which the
// publisher uses for keyed messages, to the Java client's default
// partitioner: partition = (murmur2(key) & 0x7fffffff) % partitions, with
// the hash vectors of Kafka's UtilsTest.testMurmur2.
func TestMurmur2MatchesJava(t *testing.T) {
	vectors := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	var partitions []int
	for i := range 1009 { // a prime, so every hash bit matters
		partitions = append(partitions, i)
	}
	bal := &kafka.Murmur2Balancer{}
	for key, hash := range vectors {
		want := int(uint32(hash)&0x7fffffff) % len(partitions)
		if got := bal.Balance(kafka.Message{Key: []byte(key)}, partitions...); got != want {
			t.Errorf("partition of key %q: got %d, want %d (Java)", key, got, want)
		}
	}
	if got, want := bal.Balance(kafka.Message{Key: []byte("foobar")}, partitions[:50]...), 16; got != want {
		t.Errorf("partition of key \"foobar\" among 50: got %d, want %d", got, want)
	}
}

func TestTracker(t *testing.T) {
	t.Run("commit point waits for the oldest unacked", func(t *testing.T) {
		tr := newTracker(10, nil)
		var seqs []int64
		for _, off := range []int64{10, 11, 13, 14} { // 12 is a gap (compaction)
			seq, _ := tr.add(off)
			seqs = append(seqs, seq)
		}
		steps := []struct {
			ack  int
			want int64
			ok   bool
		}{
			{ack: 2, want: 10, ok: false}, // 13 acked, 10 not: nothing to commit
			{ack: 1, want: 10, ok: false},
			{ack: 0, want: 14, ok: true}, // 10, 11, 13 acked: commit 14
			{ack: 3, want: 15, ok: true},
		}
		for i, s := range steps {
			tr.ack(seqs[s.ack])
			c, ok := tr.toCommit()
			if ok != s.ok || ok && c.offset != s.want {
				t.Errorf("step %d: got (%d, %v), want (%d, %v)", i, c.offset, ok, s.want, s.ok)
			}
		}
	})
	t.Run("failures travel in commit metadata", func(t *testing.T) {
		tr := newTracker(0, nil)
		s0, _ := tr.add(0)
		s1, _ := tr.add(1)
		tr.fail(0, 2)
		c, ok := tr.toCommit()
		if !ok || c.offset != 0 || c.metadata != "mq-attempts:0=2" {
			t.Fatalf("got (%+v, %v), want offset 0 with metadata mq-attempts:0=2", c, ok)
		}
		tr.setCommitted(c)
		if _, ok := tr.toCommit(); ok {
			t.Errorf("nothing changed since the commit, but toCommit reports a change")
		}
		tr.fail(1, 1)
		tr.ack(s0)
		c, _ = tr.toCommit()
		if c.offset != 1 || c.metadata != "mq-attempts:1=1" {
			t.Errorf("got %+v, want offset 1 with metadata mq-attempts:1=1", c)
		}
		tr.ack(s1)
		c, _ = tr.toCommit()
		if c.offset != 2 || c.metadata != "" {
			t.Errorf("got %+v, want offset 2 without metadata", c)
		}
		if got, mark := decodeAttempts("mq-attempts:5=3,7=1,x=2,9=-1"); len(got) != 2 || got[5] != 3 || got[7] != 1 || mark != -1 {
			t.Errorf("decodeAttempts: got %v, %d, want map[5:3 7:1], -1", got, mark)
		}
		if got, mark := decodeAttempts("someone else's metadata"); got != nil || mark != -1 {
			t.Errorf("decodeAttempts of foreign metadata: got %v, %d, want nil, -1", got, mark)
		}
	})
	t.Run("add reports earlier failures", func(t *testing.T) {
		tr := newTracker(5, map[int64]int{6: 2})
		if _, got := tr.add(5); got != 0 {
			t.Errorf("failures of offset 5: got %d, want 0", got)
		}
		if _, got := tr.add(6); got != 2 {
			t.Errorf("failures of offset 6: got %d, want 2", got)
		}
	})
	t.Run("reused window keeps sequence numbers and allocates nothing", func(t *testing.T) {
		tr := newTracker(0, nil)
		next := int64(0)
		round := func() {
			seqs := make([]int64, 0, 8)
			for range 8 {
				seq, _ := tr.add(next)
				seqs = append(seqs, seq)
				next++
			}
			for i := len(seqs) - 1; i >= 0; i-- { // acked newest first
				tr.ack(seqs[i])
			}
		}
		round()
		for r := range 3 {
			round()
			if c, ok := tr.toCommit(); !ok || c.offset != next {
				t.Fatalf("round %d: got (%d, %v), want (%d, true)", r, c.offset, ok, next)
			}
		}
		if n := testing.AllocsPerRun(100, round); n != 0 {
			t.Errorf("add and ack of a reused window: got %v allocations per round, want 0", n)
		}
	})
	t.Run("revoke waits for running handlers", func(t *testing.T) {
		tr := newTracker(0, nil)
		if !tr.begin(0) {
			t.Fatal("begin before revoke: got false, want true")
		}
		done := make(chan bool)
		go func() { done <- tr.revoke(10 * time.Second) }()
		select {
		case <-done:
			t.Fatal("revoke returned while a handler was running")
		case <-time.After(50 * time.Millisecond):
		}
		if tr.begin(1) {
			t.Error("begin after revoke: got true, want false")
		}
		tr.end()
		if ok := <-done; !ok {
			t.Error("revoke: got false, want true once the handler ended")
		}
		if tr.revoke(time.Millisecond) != true {
			t.Error("second revoke: got false, want true")
		}
	})
}

func TestNewRecordSharesTheMessage(t *testing.T) {
	m := &mq.Message{ID: "id-1", Key: "k", Body: []byte("body"), Header: map[string]string{"a": "1", "empty": ""}}
	hdrs := make([]protocol.Header, 0, len(m.Header)+1)
	var r record
	newRecord(&r, m, hdrs)
	if string(r.key) != "k" || string(r.value) != "body" {
		t.Fatalf("got key %q value %q, want k, body", r.key, r.value)
	}
	if &r.value[0] != &m.Body[0] {
		t.Error("value: got a copy of the body, want the body itself")
	}
	got := map[string]string{}
	for _, h := range r.headers {
		if h.Value == nil {
			t.Errorf("header %q: got a nil value, want an empty one (Kafka would record null)", h.Key)
		}
		got[h.Key] = string(h.Value)
	}
	want := map[string]string{headerID: "id-1", "a": "1", "empty": ""}
	if !maps.Equal(got, want) {
		t.Errorf("headers: got %v, want %v", got, want)
	}
	if r.headers[0].Key != headerID {
		t.Errorf("first header: got %q, want %q", r.headers[0].Key, headerID)
	}
	if &r.headers[0] != &hdrs[:1][0] {
		t.Error("headers were not written to the given buffer")
	}
	if n := testing.AllocsPerRun(100, func() { newRecord(&r, m, hdrs[:0]) }); n != 0 {
		t.Errorf("newRecord into a buffer with room: got %v allocations, want 0", n)
	}
}

// testPartition returns a partition of a subscription that is not running,
// for tests of deliveries.
func testPartition() *partition {
	b := &Broker{log: slog.New(slog.DiscardHandler)}
	s := &subscription{b: b, topic: "t", cfg: driver.SubscribeConfig{Group: "g"}}
	return newPartition(&generation{s: s}, 0, 0, committedAttempts{})
}

func TestNewDeliveryAllocations(t *testing.T) {
	p := testPartition()
	km := kafka.Message{Value: []byte("body"), Headers: []kafka.Header{{Key: headerID, Value: []byte("0190a6f4-0000-7000-8000-000000000000")}}}
	n := testing.AllocsPerRun(100, func() {
		d := p.newDelivery(km, nil)
		p.t.ack(d.seq)
		km.Offset++
	})
	// The delivery with its message and native record, the ID string and
	// the Header map. The delivery is its own Settler, Begin is the
	// partition's, and the native record is boxed only when Message.As
	// asks for it.
	if n > 3 {
		t.Errorf("newDelivery: got %v allocations, want at most 3", n)
	}
}

func TestDeliverySettleCountsRunningHandlers(t *testing.T) {
	p := testPartition()
	ctx := t.Context()
	next := int64(0)
	deliver := func() *delivery {
		d := p.newDelivery(kafka.Message{Offset: next}, nil)
		next++
		return d
	}
	running := func() int {
		p.t.mu.Lock()
		defer p.t.mu.Unlock()
		return p.t.running
	}

	d := deliver()
	if err := d.Begin(&d.Delivery); err != nil {
		t.Fatalf("Begin: got %v, want nil", err)
	}
	if got := running(); got != 1 {
		t.Fatalf("after Begin: got %d running, want 1", got)
	}
	if _, retry := d.Settle(ctx, nil); retry {
		t.Errorf("Settle(nil): got retry, want none")
	}
	if got := running(); got != 0 {
		t.Errorf("after an ack: got %d running, want 0", got)
	}

	// Released unstarted at shutdown: never counted, so not uncounted.
	deliver().Settle(ctx, driver.ErrNotHandled)
	if got := running(); got != 0 {
		t.Errorf("after a release: got %d running, want 0", got)
	}

	// A handler running when the partition is revoked, and a delivery
	// fetched but not started: revoke lets the waiting one run and waits
	// for both (a later message must not be acknowledged while an earlier
	// one is left to the new owner); once revoked, Begin refuses.
	d = deliver()
	if err := d.Begin(&d.Delivery); err != nil {
		t.Fatalf("Begin: got %v, want nil", err)
	}
	waiting := deliver()
	revoked := make(chan bool)
	go func() { revoked <- p.t.revoke(10 * time.Second) }()
	for !p.t.isRevoked() {
		time.Sleep(time.Millisecond)
	}
	if err := waiting.Begin(&waiting.Delivery); err != nil {
		t.Errorf("Begin of a delivery fetched before the revoke: got %v, want nil (it drains)", err)
	}
	waiting.Settle(ctx, nil)
	select {
	case <-revoked:
		t.Fatal("revoke returned while a handler was running")
	case <-time.After(20 * time.Millisecond):
	}
	d.Settle(ctx, nil)
	if !<-revoked {
		t.Errorf("revoke: got false, want true once the handlers settled")
	}
	if got := running(); got != 0 {
		t.Errorf("after the drain: got %d running, want 0", got)
	}
	if err := beginOf(deliver()); !errors.Is(err, errRevoked) {
		t.Errorf("Begin after revoke: got %v, want errRevoked", err)
	}
	// The release at 1 (never handled) holds the commit point.
	if c, _ := p.t.toCommit(); c.offset != 1 {
		t.Errorf("commit point: got %d, want 1 (the released message stays uncommitted)", c.offset)
	}
}

// TestRevokeDrainTimesOut: a fetched delivery that is not handled within
// the revoke timeout is refused afterwards and left to the new owner.
func TestRevokeDrainTimesOut(t *testing.T) {
	p := testPartition()
	d := p.newDelivery(kafka.Message{Offset: 0}, nil)
	if p.t.revoke(20 * time.Millisecond) {
		t.Errorf("revoke with a delivery never handled: got true, want false")
	}
	if err := d.Begin(&d.Delivery); !errors.Is(err, errRevoked) {
		t.Errorf("Begin after the drain timed out: got %v, want errRevoked", err)
	}
	d.Settle(t.Context(), errRevoked)
	if c, _ := p.t.toCommit(); c.offset != 0 {
		t.Errorf("commit point: got %d, want 0", c.offset)
	}
}

func TestDeliverySettleOutcomes(t *testing.T) {
	p := testPartition()
	s := p.g.s
	ctx := t.Context()
	next := int64(0)
	run := func(herr error) (d *delivery, delay time.Duration, retry bool) {
		d = p.newDelivery(kafka.Message{Offset: next}, nil)
		next++
		if err := d.Begin(&d.Delivery); err != nil {
			t.Fatalf("Begin: got %v, want nil", err)
		}
		delay, retry = d.Settle(ctx, herr)
		return d, delay, retry
	}
	running := func() int {
		p.t.mu.Lock()
		defer p.t.mu.Unlock()
		return p.t.running
	}

	// The dispatcher's release (no handler ran) leaves the message at the
	// commit point and nothing counted as running. A handler's own
	// driver.ErrNotHandled never gets here: the dispatcher turns it into
	// a plain failure (driver's TestHandlerReturningNotHandledIsAFailure).
	released := p.newDelivery(kafka.Message{Offset: next}, nil)
	next++
	if _, retry := released.Settle(ctx, driver.ErrNotHandled); retry {
		t.Errorf("release: got retry, want none")
	}
	if got := running(); got != 0 {
		t.Errorf("after a release: got %d running, want 0", got)
	}
	if c, _ := p.t.toCommit(); c.offset != 0 {
		t.Errorf("commit point after a release: got %d, want 0", c.offset)
	}

	// A permanent failure is dropped: acknowledged, never retried.
	p = testPartition()
	s = p.g.s
	next = 0
	if _, _, retry := run(mq.Permanent(errors.New("bad"))); retry {
		t.Errorf("permanent failure: got retry, want none")
	}
	if c, ok := p.t.toCommit(); !ok || c.offset != 1 {
		t.Errorf("commit point after a permanent failure: got (%d, %v), want (1, true)", c.offset, ok)
	}

	// A plain failure is retried in place after the backoff, and counted.
	s.cfg.Backoff = func(int) time.Duration { return 7 * time.Millisecond }
	_, delay, retry := run(errors.New("try again"))
	if !retry || delay != 7*time.Millisecond {
		t.Errorf("failure: got (%v, %v), want (7ms, true)", delay, retry)
	}
	if c, ok := p.t.toCommit(); !ok || c.metadata != "mq-attempts:1=1" {
		t.Errorf("commit after a failure: got (%+v, %v), want metadata mq-attempts:1=1", c, ok)
	}
	if got := running(); got != 0 {
		t.Errorf("after a failure: got %d running, want 0", got)
	}
	if !errors.Is(errRevoked, driver.ErrNotHandled) {
		t.Errorf("errRevoked does not wrap driver.ErrNotHandled")
	}
}
