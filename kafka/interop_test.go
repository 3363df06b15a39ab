package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// The interop tests exchange records with the Java client of the Kafka
// distribution that scripts/brokers installs (kafka-clients), in both
// directions, and compare them field by field with the Interoperability
// table of the package documentation. The Java side is
// kafka/testdata/interop/Interop.java, compiled with javac at test time.

// interopUnavailable skips t, or fails it under MQ_TEST_REQUIRE_BROKERS=1.
func interopUnavailable(t *testing.T, why string) {
	t.Helper()
	msg := "Java interop test: " + why + "; install a JDK and run `scripts/brokers up kafka`"
	if os.Getenv("MQ_TEST_REQUIRE_BROKERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip("skipped: " + msg)
}

// interopJava compiles Interop.java against kafka-clients and slf4j-api,
// found where scripts/brokers lays out the distribution ($MQ_BROKERS_CACHE,
// default .cache/brokers at the root of the checkout whose scripts/brokers
// runs the brokers, else this one's), and returns the class path to run it.
func interopJava(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			interopUnavailable(t, tool+" not found")
		}
	}
	classpath := kafkaClientsClasspath(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "javac", "-d", out, "-cp", classpath, filepath.Join("testdata", "interop", "Interop.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac Interop.java: %v\n%s", err, b)
	}
	return out + string(os.PathListSeparator) + classpath
}

// javaRecord is one record as Interop consume prints it; hex strings are
// nil for null.
type javaRecord struct {
	Partition     int          `json:"partition"`
	Offset        int64        `json:"offset"`
	Key           *string      `json:"key"`
	Value         *string      `json:"value"`
	Timestamp     int64        `json:"timestamp"`
	TimestampType string       `json:"timestamp_type"`
	Headers       [][2]*string `json:"headers"`
}

// runInterop runs Interop with mode, the test brokers and args, bounded
// by 90s, and returns its output lines.
func runInterop(t *testing.T, cp, mode string, args ...string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	full := append([]string{"-cp", cp, "Interop", mode, strings.Join(kafkatest.Addrs(t), ",")}, args...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "java", full...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java Interop %s: %v\n%s", mode, err, stderr.String())
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 && l[0] == '{' {
			lines = append(lines, append([]byte(nil), l...))
		}
	}
	return lines
}

func javaConsume(t *testing.T, cp, topic string) javaRecord {
	t.Helper()
	lines := runInterop(t, cp, "consume", topic, "1", "60000")
	if len(lines) != 1 {
		t.Fatalf("java Interop consume printed %d records, want 1", len(lines))
	}
	var r javaRecord
	if err := json.Unmarshal(lines[0], &r); err != nil {
		t.Fatalf("java Interop consume printed %s: %v", lines[0], err)
	}
	return r
}

func hexOf(s string) *string { h := hex.EncodeToString([]byte(s)); return &h }

func strOf(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

// checkJavaHeaders compares the record's headers, in order, with want
// (key, value pairs).
func checkJavaHeaders(t *testing.T, r javaRecord, want [][2]string) {
	t.Helper()
	ok := len(r.Headers) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strOf(r.Headers[i][0]) == *hexOf(want[i][0]) && strOf(r.Headers[i][1]) == *hexOf(want[i][1])
	}
	if !ok {
		var got []string
		for _, h := range r.Headers {
			got = append(got, strOf(h[0])+"="+strOf(h[1]))
		}
		t.Errorf("Java got headers %v, want %q in hex", got, want)
	}
}

func provisionKafka(t *testing.T, b mq.Broker, topic string, groups ...string) {
	t.Helper()
	if err := mq.Provision(ctxFor(t, 60*time.Second), b, topic, groups...); err != nil {
		t.Fatalf("Provision(%q): %v", topic, err)
	}
}

// TestInteropFromJava: a record the Java producer sends (LongSerializer
// key, binary value, a binary header, a repeated header, a null header
// value, CreateTime 2000-01-01) is delivered as the Interoperability table
// says, and republished unchanged through mq it reaches the Java consumer
// with the same key bytes, in the partition Java's partitioner chose, with
// the same value and header bytes and the ID in mq-id.
func TestInteropFromJava(t *testing.T) {
	cp := interopJava(t)
	b := open(t, "")
	topic, topic2 := uniqueName(t, "interop"), uniqueName(t, "interop2")
	provisionKafka(t, b, topic, "g")
	provisionKafka(t, b, topic2)
	got := make(chan *mq.Message, 10)
	subscribe(t, b, topic, func(_ context.Context, m *mq.Message) error { got <- m; return nil }, mq.Group("g"))

	lines := runInterop(t, cp, "produce", topic)
	var sent struct{ Partition, Offset int64 }
	if len(lines) != 1 || json.Unmarshal(lines[0], &sent) != nil {
		t.Fatalf("java Interop produce printed %q, want {partition, offset}", lines)
	}
	var m *mq.Message
	select {
	case m = <-got:
	case <-time.After(60 * time.Second):
		t.Fatal("the Java record was not delivered within 60s")
	}
	if want := fmt.Sprintf("kafka:%s:%d:%d", topic, sent.Partition, sent.Offset); m.ID != want {
		t.Errorf("ID: got %q, want %q", m.ID, want)
	}
	if m.Key != "\x00\x00\x00\x00\x00\x00\x00\xc8" {
		t.Errorf("Key: got %q, want LongSerializer's 200", m.Key)
	}
	if string(m.Body) != "\x00\xffjvm" {
		t.Errorf("Body: got %q", m.Body)
	}
	if want := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC); !m.PublishTime.Equal(want) {
		t.Errorf("PublishTime: got %v, want the record's CreateTime %v", m.PublishTime, want)
	}
	want := map[string]string{"text": "ünïcode", "bin": "\xfe\x00\xff", "dup": "last", "null": ""}
	if len(m.Header) != len(want) {
		t.Errorf("got headers %q, want %q", m.Header, want)
	}
	for k, v := range want {
		if got, ok := m.Header[k]; !ok || got != v {
			t.Errorf("header %q: got %q (present %v), want %q", k, got, ok, v)
		}
	}

	if err := b.Publish(ctxFor(t, 30*time.Second), topic2, m); err != nil {
		t.Fatalf("Publish of the delivered Java record, unchanged: %v", err)
	}
	r := javaConsume(t, cp, topic2)
	if strOf(r.Key) != *hexOf(m.Key) || strOf(r.Value) != *hexOf(string(m.Body)) {
		t.Errorf("republished, Java got key %s value %s, want %x %x", strOf(r.Key), strOf(r.Value), m.Key, m.Body)
	}
	if int64(r.Partition) != sent.Partition {
		t.Errorf("republished, Java got partition %d, want %d, where Java's partitioner put the key (both topics have 3 partitions)", r.Partition, sent.Partition)
	}
	if r.TimestampType != "CreateTime" {
		t.Errorf("timestamp type: got %q, want CreateTime (the topic default)", r.TimestampType)
	}
	// mq-id first, then the headers in Go map order: compare as a set.
	byKey := map[string]string{}
	for _, h := range r.Headers {
		byKey[strOf(h[0])] = strOf(h[1])
	}
	wantHex := map[string]string{*hexOf("mq-id"): *hexOf(m.ID)}
	for k, v := range want {
		wantHex[*hexOf(k)] = *hexOf(v)
	}
	if len(byKey) != len(wantHex) || len(r.Headers) != len(wantHex) {
		t.Errorf("republished, Java got headers %v, want %v (hex)", byKey, wantHex)
	}
	for k, v := range wantHex {
		if byKey[k] != v {
			t.Errorf("republished, Java header %s: got %s, want %s", k, byKey[k], v)
		}
	}
}

// TestInteropToJava: a message published through mq reaches the Java
// consumer as the Interoperability table says: key bytes, value, the ID
// in mq-id first, then the headers, CreateTime about now.
func TestInteropToJava(t *testing.T) {
	cp := interopJava(t)
	b := open(t, "")
	topic := uniqueName(t, "interop")
	provisionKafka(t, b, topic)
	m := &mq.Message{ID: "interop-" + topic, Key: "k-\xff", Body: []byte{0, 0xff, 'g', 'o'}, Header: map[string]string{"bin": "\xfe\x00"}}
	if err := b.Publish(ctxFor(t, 30*time.Second), topic, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	r := javaConsume(t, cp, topic)
	if strOf(r.Key) != *hexOf(m.Key) || strOf(r.Value) != *hexOf(string(m.Body)) {
		t.Errorf("Java got key %s value %s, want %x %x", strOf(r.Key), strOf(r.Value), m.Key, m.Body)
	}
	if r.TimestampType != "CreateTime" || time.Since(time.UnixMilli(r.Timestamp)).Abs() > time.Minute {
		t.Errorf("Java got timestamp %d (%s), want CreateTime about now", r.Timestamp, r.TimestampType)
	}
	checkJavaHeaders(t, r, [][2]string{{"mq-id", m.ID}, {"bin", "\xfe\x00"}})
}
