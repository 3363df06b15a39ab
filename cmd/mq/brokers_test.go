package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq/kafka/kafkatest"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
	"github.com/seedmq/mq/sqs/snstest"
	"github.com/seedmq/mq/sqs/sqstest"
)

// brokerURL returns the URL of each real broker, or skips (fails with
// MQ_TEST_REQUIRE_BROKERS=1) as the test helper packages do.
func brokerURL(t *testing.T, name string) string {
	t.Helper()
	switch name {
	case "kafka":
		return "kafka://" + strings.Join(kafkatest.Addrs(t), ",")
	case "rabbitmq":
		// Queues of finished tests expire, so that runs do not pile up
		// queues on the shared broker.
		u, err := url.Parse(rabbitmqtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("queue_expires", "10m")
		u.RawQuery = q.Encode()
		return u.String()
	case "sqs":
		endpoint, region := sqstest.Endpoint(t)
		return "sqs://?region=" + url.QueryEscape(region) + "&endpoint=" + url.QueryEscape(endpoint)
	case "sns":
		endpoint, region := snstest.Endpoint(t)
		return "sns+sqs://?region=" + url.QueryEscape(region) + "&endpoint=" + url.QueryEscape(endpoint)
	}
	t.Fatalf("no broker %q", name)
	return ""
}

// unique returns a topic or group name of its own for the test.
func unique(what string) string {
	return fmt.Sprintf("cli-%s-%08x", what, rand.Uint32())
}

type tailed struct {
	ID     string
	Key    string
	Topic  string
	Group  string
	Header map[string]string
	Body   *string
}

func parseTailed(t *testing.T, out string) []tailed {
	t.Helper()
	var ms []tailed
	for _, l := range lines(out) {
		var m tailed
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("tail --json line %q: %v", l, err)
		}
		ms = append(ms, m)
	}
	return ms
}

type lagReading struct {
	Messages   int64
	InFlight   int64 `json:"in_flight"`
	Note       string
	Partitions []struct{ Partition, End, Committed, Lag int64 }
}

// awaitLag reads the backlog until it is want (SQS counts are
// approximate and settle within seconds), failing after 30s.
func awaitLag(t *testing.T, u, topic, group string, want int64) lagReading {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := runMQ(t, "", "lag", u, topic, group, "--json").want(t, 0, "lag "+topic+" "+group)
		var l lagReading
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatalf("lag --json: %q: %v", r.stdout, err)
		}
		if l.Messages == want {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag of %s/%s: %d messages, want %d", topic, group, l.Messages, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestBrokers runs publish, tail, lag, replay and redrive against each
// real broker, as a user would from a shell.
func TestBrokers(t *testing.T) {
	for _, name := range []string{"kafka", "rabbitmq", "sqs"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // different brokers: mostly waiting on each
			u := brokerURL(t, name)
			t.Run("ping", func(t *testing.T) { testPing(t, u, name) })
			t.Run("publish-tail-lag", func(t *testing.T) { testPublishTailLag(t, u, name) })
			t.Run("redrive", func(t *testing.T) { testRedrive(t, u, name) })
			t.Run("conform", func(t *testing.T) { testConform(t, u, name) })
		})
	}
}

// TestBrokersSNS runs publish, tail and lag on sns+sqs:// (moto): tail
// reads through a temporary group, a queue of its own subscribed to the
// topic, and removes it on exit.
func TestBrokersSNS(t *testing.T) {
	testPublishTailLag(t, brokerURL(t, "sns"), "sns")
}

func testPing(t *testing.T, u, name string) {
	r := runMQ(t, "", "ping", u).want(t, 0, "ping")
	if !strings.Contains(r.stdout, name+" driver") || !strings.Contains(r.stdout, "ok: ping") {
		t.Errorf("ping output:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, "guest:") || strings.Contains(r.stdout+r.stderr, "guest@") {
		t.Errorf("ping printed user info:\n%s%s", r.stdout, r.stderr)
	}
}

func testPublishTailLag(t *testing.T, u, name string) {
	topic := unique("t")
	runMQ(t, "", "provision", u, topic, "svc").want(t, 0, "provision")

	var tail *background
	if name == "sqs" {
		// No fan-out: tail refuses to take the group's messages unasked.
		r := runMQ(t, "", "tail", u, topic).want(t, 3, "tail on SQS without --group")
		if !strings.Contains(r.stderr, "pass --group NAME") {
			t.Errorf("tail on SQS: stderr %q does not say how to proceed", r.stderr)
		}
	} else {
		tail = start(t, "^tailing .* through temporary group", "tail", u, topic, "-n", "3", "--json")
	}

	body := "héllo\tworld"
	r := runMQ(t, "", "publish", u, topic, body, "-n", "3", "-k", "key-1", "-H", "source=cli-test", "-H", "ünï=cödé").want(t, 0, "publish")
	ids := lines(r.stdout)
	if len(ids) != 3 {
		t.Fatalf("publish printed %d IDs, want 3: %q", len(ids), r.stdout)
	}

	// The service's group has the three messages waiting.
	l := awaitLag(t, u, topic, "svc", 3)
	switch name {
	case "kafka":
		var sum int64
		for _, p := range l.Partitions {
			sum += p.Lag
			if p.Lag != p.End-p.Committed {
				t.Errorf("partition %d: lag %d, want end %d minus committed %d", p.Partition, p.Lag, p.End, p.Committed)
			}
		}
		if len(l.Partitions) == 0 || sum != 3 {
			t.Errorf("kafka lag partitions %+v: want per-partition lags summing to 3", l.Partitions)
		}
	case "rabbitmq":
		if l.InFlight != -1 || !strings.Contains(l.Note, "management=") {
			t.Errorf("rabbitmq in_flight %d, note %q: want -1 (not counted over AMQP) and a note saying how to count it", l.InFlight, l.Note)
		}
		// With the management API, in-flight is counted (none here).
		mu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		q := mu.Query()
		q.Set("management", rabbitmqtest.ManagementURL(t))
		mu.RawQuery = q.Encode()
		// The plugin samples a new queue within seconds; until then
		// in-flight is unknown and the note says so.
		var ml lagReading
		for i := 0; i < 40; i++ {
			r := runMQ(t, "", "lag", mu.String(), topic, "svc", "--json").want(t, 0, "lag with management")
			ml = lagReading{}
			if err := json.Unmarshal([]byte(r.stdout), &ml); err != nil {
				t.Fatalf("lag --json: %q: %v", r.stdout, err)
			}
			if ml.InFlight >= 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if ml.Messages != 3 || ml.InFlight != 0 || ml.Note != "" {
			t.Errorf("rabbitmq lag with management: got %+v, want 3 messages, 0 in flight, no note", ml)
		}
	}
	text := runMQ(t, "", "lag", u, topic, "svc").want(t, 0, "lag")
	if !regexp.MustCompile(`(?m)^topic ` + topic + ` group svc: ~?3 message\(s\) behind`).MatchString(text.stdout) {
		t.Errorf("lag text:\n%s", text.stdout)
	}
	if name == "rabbitmq" && !strings.Contains(text.stdout, "\nnote: ") {
		t.Errorf("lag text on rabbitmq without management: no note on what is not counted:\n%s", text.stdout)
	}
	watch := runMQ(t, "", "lag", u, topic, "svc", "--watch", "200ms", "-n", "3").want(t, 0, "lag --watch")
	if ls := lines(watch.stdout); len(ls) != 3 || !strings.Contains(ls[0], topic+"/svc 3") || !strings.Contains(ls[2], "drain 0.0/s not draining") {
		t.Errorf("lag --watch -n 3: want 3 readings of 3 messages, not draining:\n%s", watch.stdout)
	}
	runMQ(t, "", "lag", u, topic, "svc", "--max", "2").want(t, 5, "lag --max 2")
	runMQ(t, "", "lag", u, topic, "svc", "--max", "3").want(t, 0, "lag --max 3")

	var got []tailed
	if tail != nil {
		tr := tail.wait(t, time.Minute)
		tr.want(t, 0, "tail -n 3")
		got = parseTailed(t, tr.stdout)
		g := regexp.MustCompile(`temporary group (mq-tail-[0-9a-f]+)`).FindStringSubmatch(tr.stderr)
		if g == nil {
			t.Fatalf("tail stderr %q names no temporary group", tr.stderr)
		}
		if strings.Contains(tr.stderr, "could not remove") {
			t.Errorf("tail: %s", tr.stderr)
		}
		// The temporary group is gone.
		runMQ(t, "", "lag", u, topic, g[1]).want(t, 4, "lag of the removed temporary group")
		// The service's group still has everything: tail took nothing from it.
		awaitLag(t, u, topic, "svc", 3)
	} else {
		tr := runMQ(t, "", "tail", u, topic, "--group", "svc", "-n", "3", "--json").want(t, 0, "tail --group svc")
		if !strings.Contains(tr.stderr, "consuming what is printed") {
			t.Errorf("tail --group stderr %q does not warn that it consumes", tr.stderr)
		}
		got = parseTailed(t, tr.stdout)
		awaitLag(t, u, topic, "svc", 0)
	}
	var gotIDs []string
	for _, m := range got {
		gotIDs = append(gotIDs, m.ID)
		if m.Body == nil || *m.Body != body || m.Key != "key-1" && name != "rabbitmq" && name != "sqs" && name != "sns" ||
			m.Header["source"] != "cli-test" || m.Header["ünï"] != "cödé" || m.Topic != topic {
			t.Errorf("tailed %+v: want body %q, key, headers and topic intact", m, body)
		}
	}
	slices.Sort(gotIDs)
	slices.Sort(ids)
	if !slices.Equal(gotIDs, ids) {
		t.Errorf("tail printed IDs %q, want the published %q", gotIDs, ids)
	}

	// What tail --json wrote, replay publishes again.
	var rec strings.Builder
	for _, m := range got {
		b, _ := json.Marshal(m)
		rec.Write(append(b, '\n'))
	}
	copyTopic := unique("copy")
	runMQ(t, "", "provision", u, copyTopic, "svc").want(t, 0, "provision copy")
	rr := runMQ(t, rec.String(), "replay", u, copyTopic).want(t, 0, "replay")
	if n := len(lines(rr.stdout)); n != 3 {
		t.Errorf("replay printed %d IDs, want 3", n)
	}
	awaitLag(t, u, copyTopic, "svc", 3)
	if name == "kafka" {
		// A topic's history, through a temporary group.
		hist := unique("hist")
		runMQ(t, "", "provision", u, hist, "svc").want(t, 0, "provision hist")
		rr := runMQ(t, "", "replay", u, hist, "--from-topic", topic, "--idle", "8s").want(t, 0, "replay --from-topic")
		if n := len(lines(rr.stdout)); n != 3 {
			t.Errorf("replay --from-topic printed %d IDs, want 3:\n%s", n, rr.stderr)
		}
		awaitLag(t, u, hist, "svc", 3)
	}
}

func testRedrive(t *testing.T, u, name string) {
	topic, dlq := unique("src"), unique("dlq")
	runMQ(t, "", "provision", u, topic, "back").want(t, 0, "provision topic")
	runMQ(t, "", "provision", u, dlq, "ops").want(t, 0, "provision dlq")
	runMQ(t, "", "publish", u, dlq, "poison", "-n", "2", "-H", "dlq-topic="+topic, "-H", "dlq-error=timeout talking to db", "-q").want(t, 0, "publish dead letters")
	runMQ(t, "", "publish", u, dlq, "other", "-H", "dlq-topic="+topic, "-H", "dlq-error=bad input", "-q").want(t, 0, "publish a dead letter")

	idle := "5s"
	if name == "kafka" {
		idle = "10s" // a new consumer group takes seconds to form
	}
	dry := runMQ(t, "", "redrive", u, dlq, "--group", "ops", "--match-error", "timeout", "--dry-run", "--json", "--idle", idle).want(t, 0, "redrive --dry-run")
	if n := len(lines(dry.stdout)); n != 2 || !strings.Contains(dry.stdout, `"dry_run":true`) {
		t.Errorf("redrive --dry-run: %d lines, want 2 dry-run lines:\n%s\n%s", n, dry.stdout, dry.stderr)
	}
	if !strings.Contains(dry.stderr, "would move 2 dead letter(s)") {
		t.Errorf("redrive --dry-run stderr: %q", dry.stderr)
	}
	awaitLag(t, u, topic, "back", 0)
	if name != "kafka" { // Kafka's lag counts offsets, and the set-aside copies are new ones
		awaitLag(t, u, dlq, "ops", 3) // the dry run lost nothing
	}

	moved := runMQ(t, "", "redrive", u, dlq, "--group", "ops", "--match-error", "timeout", "--idle", idle).want(t, 0, "redrive")
	if n := len(lines(moved.stdout)); n != 2 {
		t.Errorf("redrive printed %d moves, want 2:\n%s\n%s", n, moved.stdout, moved.stderr)
	}
	if !strings.Contains(moved.stderr, "moved 2 dead letter(s)") {
		t.Errorf("redrive stderr: %q", moved.stderr)
	}
	awaitLag(t, u, topic, "back", 2)
}

// testConform runs one case of the suite through mq conform: the whole
// suite takes minutes per broker and runs in each driver's own tests.
func testConform(t *testing.T, u, name string) {
	r := runMQ(t, "", "conform", u, "--run", "^round-trip$", "--timeout", "60s").want(t, 0, "conform")
	if !regexp.MustCompile(`(?m)^round-trip +PASS`).MatchString(r.stdout) || !strings.Contains(r.stdout, "("+name+" driver)") {
		t.Errorf("conform output:\n%s", r.stdout)
	}
}
