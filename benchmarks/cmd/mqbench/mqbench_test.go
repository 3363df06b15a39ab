package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	tests := []struct {
		xs   []float64
		q    float64
		want float64
	}{
		{[]float64{3, 1, 2}, 0.5, 2},
		{[]float64{4, 1, 3, 2}, 0.5, 2.5},
		{[]float64{1, 2, 3, 4, 5}, 0, 1},
		{[]float64{1, 2, 3, 4, 5}, 1, 5},
		{[]float64{0, 10}, 0.99, 9.9},
		{[]float64{7}, 0.999, 7},
	}
	for _, tt := range tests {
		if got := quantile(tt.xs, tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantile(%v, %v) = %v, want %v", tt.xs, tt.q, got, tt.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
	xs := []float64{3, 1, 2}
	quantile(xs, 0.5)
	if xs[0] != 3 {
		t.Errorf("quantile sorted its argument: got %v, want [3 1 2]", xs)
	}
}

func TestRunMsgs(t *testing.T) {
	p := brokerPlan{Msgs: 10000, PerConc: true, Batch: 10}
	tests := []struct {
		c     cell
		short bool
		want  int
	}{
		{cell{Size: 1024, Conc: 16, Batch: 10}, false, 10000},
		{cell{Size: 1024, Conc: 4, Batch: 10}, false, 2500},
		{cell{Size: 65536, Conc: 16, Batch: 10}, false, 2500},
		{cell{Size: 1024, Conc: 4, Batch: 10}, true, 500},
		{cell{Size: 65536, Conc: 1, Batch: 10}, true, 200},
	}
	for _, tt := range tests {
		if got := runMsgs(p, tt.c, tt.short, 1); got != tt.want {
			t.Errorf("runMsgs(%+v, short=%v) = %d, want %d", tt.c, tt.short, got, tt.want)
		}
	}
}

// TestMemoryContenders runs every in-process contender through a small
// throughput run and a short latency run: each must deliver every message.
func TestMemoryContenders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	for _, ct := range memoryContenders() {
		t.Run(ct.Name, func(t *testing.T) {
			if ct.NA != "" { // the outbox contenders without PostgreSQL
				if os.Getenv("MQ_TEST_REQUIRE_BROKERS") == "1" {
					t.Fatalf("MQ_TEST_REQUIRE_BROKERS=1 but %s", ct.NA)
				}
				t.Skip(ct.NA)
			}
			for _, c := range []cell{{Size: 16, Conc: 1, Batch: 1}, {Size: 1024, Conc: 4, Batch: 3}} {
				r := throughputRun(ctx, "memory", ct, c, 300, 30, 0, time.Minute)
				if r.Error != "" {
					t.Fatalf("throughput %+v: %s", c, r.Error)
				}
				if r.MsgsPerSec <= 0 || r.CPUPerMsgUS < 0 || r.Msgs != 300 {
					t.Errorf("throughput %+v: got %+v, want positive msg/s over 300 messages", c, r)
				}
			}
			r := latencyRun(ctx, "memory", ct, 64, 500, 200*time.Millisecond, 10, time.Minute)
			if r.Error != "" {
				t.Fatalf("latency: %s", r.Error)
			}
			if r.Received != 100 || r.NotArrived != 0 {
				t.Errorf("latency: got %d received, %d not arrived; want 100, 0", r.Received, r.NotArrived)
			}
			if !(r.E2EP50 > 0 && r.E2EP50 <= r.E2EP99 && r.E2EP99 <= r.E2EP999) {
				t.Errorf("latency percentiles out of order: p50 %v p99 %v p99.9 %v", r.E2EP50, r.E2EP99, r.E2EP999)
			}
		})
	}
}

// TestReport writes a results file by hand and checks the report fills
// every cell: numbers where runs succeeded, "n/a" and the reason elsewhere.
func TestReport(t *testing.T) {
	latencySteal := 0.125
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	lines := []any{
		machineHeader{Kind: "machine", Mode: "short", CPUs: 2, Go: "go1.26", Note: "2-core shared VM", Rounds: 2, Sizes: []int{1024}, Concs: []int{4},
			Msgs: map[string]int{"kafka": 100}, PerConc: map[string]bool{"kafka": true}, Batch: map[string]int{"kafka": 1}, Rates: map[string]int{"kafka": 10}, Brokers: map[string]string{"kafka": "Apache Kafka 3.9.1"}},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "raw", Role: "raw", Note: "raw note"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "mq", Role: "mq", Note: "mq note"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "other", NA: "cannot be had"},
		result{Kind: "throughput", Broker: "kafka", Contender: "raw", Role: "raw", Size: 1024, Conc: 4, Round: 0, MsgsPerSec: 1000, CPUPerMsgUS: 10, AllocsPerMsg: 5},
		result{Kind: "throughput", Broker: "kafka", Contender: "mq", Role: "mq", Size: 1024, Conc: 4, Round: 0, MsgsPerSec: 990, CPUPerMsgUS: 10.5, AllocsPerMsg: 6},
		result{Kind: "throughput", Broker: "kafka", Contender: "other", Size: 1024, Conc: 4, Round: 0, Error: "n/a: cannot be had"},
		result{Kind: "throughput", Broker: "kafka", Contender: "raw", Role: "raw", Size: 1024, Conc: 4, Round: 1, MsgsPerSec: 2000, CPUPerMsgUS: 10, AllocsPerMsg: 5},
		result{Kind: "throughput", Broker: "kafka", Contender: "mq", Role: "mq", Size: 1024, Conc: 4, Round: 1, MsgsPerSec: 1800, CPUPerMsgUS: 12, AllocsPerMsg: 6},
		result{Kind: "throughput", Broker: "kafka", Contender: "other", Size: 1024, Conc: 4, Round: 1, Error: "n/a: cannot be had"},
		result{Kind: "latency", Broker: "kafka", Contender: "raw", Rate: 10, Received: 10, E2EP50: 1, E2EP99: 2, E2EP999: 3, PubP50: 1, PubP99: 1, PubP999: 1},
		result{Kind: "latency", Broker: "kafka", Contender: "mq", Rate: 10, Received: 10, E2EP50: 1, E2EP99: 2, E2EP999: 3, PubP50: 1, PubP99: 1, PubP999: 1, Steal: &latencySteal},
		result{Kind: "latency", Broker: "kafka", Contender: "other", Rate: 10, Error: "n/a: cannot be had"},
	}
	writeLines(t, in, lines...)
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(in, out, filepath.Join(dir, "no-notes.md")); err != nil {
		t.Fatalf("writeReport: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(data)
	for _, want := range []string{
		"2-core shared VM",
		"| 1 KiB | 4 | 1500 [1000–2000] | 1395 [990–1800] | n/a: cannot be had |",                             // throughput medians
		"| 1 KiB | 4 | 0.945 [0.900–0.990] | 0.900–0.990 (50 %) | 1.125 [1.050–1.200] | 1.050–1.200 (50 %) |", // per-round ratios, two rounds: min–max
		"| kafka | 0.945 at 1 KiB, conc 4 (0.945) | **no** | 0 held, 0 missed, 1 within noise | 1.125 at 1 KiB, conc 4 (1.125) | **no** | 0 held, 0 missed, 1 within noise |",
		"| other | n/a: cannot be had |",
		"| 10 of 10 | n/a |",    // raw's latency run recorded no steal
		"| 10 of 10 | 12.5 % |", // mq's did
		"- **other**: n/a: cannot be had.",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q; got:\n%s", want, report)
		}
	}
}

// writeLines writes v as a JSON lines file at path.
func writeLines(t *testing.T, path string, v ...any) {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, l := range v {
		if err := enc.Encode(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReportMergesRounds merges two results files that both number their
// rounds from 0: each file's mq run must be paired with its own raw run.
// Before rounds were renumbered on merge, the second file's round 0
// replaced the first's, and the report showed one ratio where there are
// two. It also checks that the rounds line counts the ratio contenders'
// extra rounds (-ratio-rounds) apart from the others'.
func TestReportMergesRounds(t *testing.T) {
	dir := t.TempDir()
	head := machineHeader{Kind: "machine", Mode: "full", CPUs: 2, Go: "go1.26", Rounds: 1, Sizes: []int{1024}, Concs: []int{4},
		Msgs: map[string]int{"kafka": 100}, Batch: map[string]int{"kafka": 1}, Rates: map[string]int{"kafka": 10}}
	cs := []any{
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "raw", Role: "raw"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "mq", Role: "mq"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "other"},
	}
	run := func(contender, role string, round int, rate, cpu float64) result {
		return result{Kind: "throughput", Broker: "kafka", Contender: contender, Role: role, Size: 1024, Conc: 4, Round: round, MsgsPerSec: rate, CPUPerMsgUS: cpu}
	}
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	writeLines(t, a, append([]any{head}, append(cs,
		run("raw", "raw", 0, 1000, 10), run("mq", "mq", 0, 1000, 11), run("other", "", 0, 500, 20))...)...)
	writeLines(t, b, append([]any{head}, append(cs,
		run("raw", "raw", 0, 1000, 20), run("mq", "mq", 0, 900, 26))...)...)
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(a+","+b, out, ""); err != nil {
		t.Fatalf("writeReport: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 1 KiB | 4 | 0.950 [0.900–1.000] | 0.900–1.000 (50 %) | 1.200 [1.100–1.300] | 1.100–1.300 (50 %) |", // one ratio per file's round
		"| Rounds per cell | 2 for raw, raw+contract, mq, franz-go-consume, franz-go and sarama (the targets' ratios), 1 for the other contenders",
		"| size | conc | raw | mq | other |\n", // each contender once, though both files name them
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("report lacks %q; got:\n%s", want, data)
		}
	}
}

// TestReportReplacesBroker writes a report from an older run of two
// brokers and a newer run of one of them with replace: the newer file's
// broker must be reported from it alone, the other broker from the older
// file, and the date row must say which broker was measured when.
func TestReportReplacesBroker(t *testing.T) {
	dir := t.TempDir()
	old := time.Date(2026, 12, 3, 16, 29, 0, 0, time.UTC)
	head := func(at time.Time, brokers ...string) machineHeader {
		h := machineHeader{Kind: "machine", Time: at, Mode: "full", CPUs: 2, Go: "go1.26", Rounds: 1, Sizes: []int{1024}, Concs: []int{4},
			Msgs: map[string]int{}, Batch: map[string]int{}, Rates: map[string]int{}}
		for _, b := range brokers {
			h.Msgs[b], h.Batch[b], h.Rates[b] = 100, 1, 10
		}
		return h
	}
	lines := func(broker string, rawRate, mqRate float64) []any {
		run := func(contender string, rate float64) result {
			return result{Kind: "throughput", Broker: broker, Contender: contender, Role: contender, Size: 1024, Conc: 4, MsgsPerSec: rate, CPUPerMsgUS: 10}
		}
		return []any{
			contenderInfo{Kind: "contender", Broker: broker, Contender: "raw", Role: "raw"},
			contenderInfo{Kind: "contender", Broker: broker, Contender: "mq", Role: "mq"},
			run("raw", rawRate), run("mq", mqRate),
		}
	}
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	writeLines(t, a, append(append([]any{head(old, "kafka", "sqs")}, lines("kafka", 1000, 500)...), lines("sqs", 1000, 800)...)...)
	writeLines(t, b, append([]any{head(old.Add(30*time.Hour), "kafka")}, lines("kafka", 1000, 1200)...)...)
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReportFrom(a+","+b, out, "", true); err != nil {
		t.Fatalf("writeReportFrom: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(data)
	for _, want := range []string{
		"| Date (UTC) | kafka 2026-12-04 22:29; sqs 2026-12-03 16:29 |",
		"| 1 KiB | 4 | 1.200 [1.200–1.200] |", // kafka: the newer run's ratio alone
		"| 1 KiB | 4 | 0.800 [0.800–0.800] |", // sqs: from the older run
		"reported from that file alone",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q; got:\n%s", want, report)
		}
	}
	if strings.Contains(report, "| 1 KiB | 4 | 0.500") || strings.Contains(report, "| 1 KiB | 4 | 0.850") {
		t.Errorf("report still uses the older kafka run; got:\n%s", report)
	}
}

// failingClose is a run that delivers each message at once and whose
// Close fails.
type failingClose struct{ recv func(int64) }

func (r failingClose) Publish(_ context.Context, bodies [][]byte, sent int64) error {
	for range bodies {
		r.recv(sent)
	}
	return nil
}
func (failingClose) Close(context.Context) error  { return errors.New("consumer stuck") }
func (failingClose) Delete(context.Context) error { return nil }

// TestCloseErrorRecorded: a run whose Close fails is reported with that
// error, for throughput and latency runs alike. Before, the deferred
// Close set the error on a copy the caller never saw.
func TestCloseErrorRecorded(t *testing.T) {
	ct := contender{Name: "stuck", Start: func(_ context.Context, _ cell, recv func(int64)) (run, error) {
		return failingClose{recv: recv}, nil
	}}
	const want = "close: consumer stuck"
	if res := throughputRun(context.Background(), "test", ct, cell{Size: 16, Conc: 1, Batch: 1}, 20, 2, 0, time.Minute); res.Error != want {
		t.Errorf("throughputRun: Error %q, want %q", res.Error, want)
	}
	if res := latencyRun(context.Background(), "test", ct, 16, 200, 100*time.Millisecond, 2, time.Minute); res.Error != want {
		t.Errorf("latencyRun: Error %q, want %q", res.Error, want)
	}
}

func TestMedianCI(t *testing.T) {
	seven := []float64{1.30, 0.90, 1.00, 1.20, 0.95, 1.05, 1.10}
	lo, hi, cov := medianCI(seven)
	if lo != 0.95 || hi != 1.20 || cov != 0.875 {
		t.Errorf("seven values: got %v–%v at %v, want the 2nd smallest and 2nd largest, 0.95–1.2 at 0.875", lo, hi, cov)
	}
	lo, hi, cov = medianCI([]float64{3, 1, 2})
	if lo != 1 || hi != 3 || cov != 0.75 {
		t.Errorf("three values: got %v–%v at %v, want min–max 1–3 at 0.75 (too few for 85 %%)", lo, hi, cov)
	}
	var twenty []float64
	for i := range 20 {
		twenty = append(twenty, float64(i))
	}
	// P(B ≤ 5) = 0.0207 for n = 20, P(B ≤ 6) = 0.0577: k = 5 covers 95.9 %,
	// k = 6 88.5 %, k = 7 (P(B ≤ 7) = 0.1316) only 73.7 %.
	lo, hi, cov = medianCI(twenty)
	if lo != 6 || hi != 13 || math.Abs(cov-0.8847) > 0.001 {
		t.Errorf("twenty values: got %v–%v at %v, want 6–13 at 0.885", lo, hi, cov)
	}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		xs     []float64
		limit  float64
		atMost bool
		want   verdict
	}{
		{[]float64{1.00, 1.02, 1.04, 1.05, 1.06, 1.08, 1.30}, 1.10, true, held},        // CI 1.02–1.08
		{[]float64{1.12, 1.15, 1.20, 1.22, 1.25, 1.27, 1.00}, 1.10, true, missed},      // CI 1.12–1.25
		{[]float64{1.00, 1.05, 1.08, 1.12, 1.15, 1.20, 1.25}, 1.10, true, withinNoise}, // CI 1.05–1.20
		{[]float64{0.96, 0.97, 1.00, 1.01, 1.02, 1.05, 0.80}, 0.95, false, held},       // CI 0.96–1.02
		{[]float64{0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 1.10}, 0.95, false, missed},     // CI 0.85–0.94
		{[]float64{0.90, 0.93, 0.96, 0.98, 1.00, 1.02, 1.05}, 0.95, false, withinNoise},
	} {
		if got := judge(c.xs, c.limit, c.atMost); got != c.want {
			t.Errorf("judge(%v, %v, atMost %v) = %d, want %d", c.xs, c.limit, c.atMost, got, c.want)
		}
	}
}

func TestStealSummary(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	runs := []result{
		{Kind: "throughput", Broker: "kafka", Contender: "raw", Size: 16, Conc: 1, Steal: f(0.01)},
		{Kind: "throughput", Broker: "rabbitmq", Contender: "mq", Size: 1024, Conc: 4, Round: 2, Steal: f(0.30)},
		{Kind: "throughput", Broker: "sqs", Contender: "raw", Size: 16, Conc: 1, Steal: f(0.02)},
		{Kind: "throughput", Broker: "sqs", Contender: "mq", Size: 16, Conc: 1}, // not recorded
		{Kind: "latency", Broker: "sqs", Contender: "mq", Steal: f(0.9)},        // not a throughput run
	}
	want := "median 2.0 %, worst 30.0 % (rabbitmq mq, 1 KiB, conc 4, round 2); 1 of 3 runs above 5 %"
	if got := stealSummary(runs); got != want {
		t.Errorf("stealSummary:\n got %s\nwant %s", got, want)
	}
	if got := stealSummary(runs[3:4]); got != "" {
		t.Errorf("stealSummary of runs without steal: got %q, want \"\"", got)
	}
	before := sample{wall: time.Unix(0, 0), steal: 0}
	after := sample{wall: time.Unix(10, 0), steal: time.Duration(runtime.NumCPU()) * time.Second}
	if got := stealShare(before, after); math.Abs(got-0.1) > 1e-9 {
		t.Errorf("stealShare of 1 s per CPU over 10 s: got %v, want 0.1", got)
	}
}

// TestReportLone checks the lone-Publish table: medians over rounds and
// each contender's Publish p50 relative to mq's in the same round.
func TestReportLone(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	writeLines(t, in,
		machineHeader{Kind: "machine", Mode: "short", CPUs: 2, Rounds: 2, Sizes: []int{1024}, Concs: []int{1}},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "mq", Role: "mq"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "franz-go"},
		result{Kind: "lone", Broker: "kafka", Contender: "mq", Round: 0, PubP50: 300, PubP99: 900, E2EP50: 500, CPUPerMsgUS: 100},
		result{Kind: "lone", Broker: "kafka", Contender: "franz-go", Round: 0, PubP50: 450, PubP99: 1000, E2EP50: 600, CPUPerMsgUS: 90},
		result{Kind: "lone", Broker: "kafka", Contender: "mq", Round: 1, PubP50: 400, PubP99: 1100, E2EP50: 700, CPUPerMsgUS: 120},
		result{Kind: "lone", Broker: "kafka", Contender: "franz-go", Round: 1, PubP50: 400, PubP99: 1200, E2EP50: 800, CPUPerMsgUS: 110},
		result{Kind: "lone", Broker: "kafka", Contender: "franz-go", Round: 2, Error: "start: failed"},
	)
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(in, out, filepath.Join(dir, "no-notes.md")); err != nil {
		t.Fatalf("writeReport: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(data)
	for _, want := range []string{
		"### Lone Publish, µs",
		"| mq | 2 | 350 [300–400] | 300–400 (50 %) | 1000 | 600 | 110 | 1.000 [1.000–1.000] |",
		"| franz-go | 2 | 425 [400–450] | 400–450 (50 %) | 1100 | 700 | 100 | 1.250 [1.000–1.500] |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q; got:\n%s", want, report)
		}
	}
}

// TestReportFranzConsume checks that the report divides mq by
// franz-go-consume per round, under the Targets table, and does not let
// franz-go-consume stand in for raw in the mq/raw ratios.
func TestReportFranzConsume(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	lines := []any{
		machineHeader{Kind: "machine", Mode: "full", CPUs: 2, Go: "go1.26", Rounds: 2, Sizes: []int{1024}, Concs: []int{4},
			Msgs: map[string]int{"kafka": 100}, PerConc: map[string]bool{"kafka": true}, Batch: map[string]int{"kafka": 1}, Rates: map[string]int{"kafka": 10}},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "raw", Role: "raw", Note: "raw note"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "mq", Role: "mq", Note: "mq note"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: franzConsumeName, Note: "franz note"},
	}
	for round, x := range []struct{ raw, mq, franz float64 }{{1000, 1100, 1000}, {1000, 1300, 1100}} {
		lines = append(lines,
			result{Kind: "throughput", Broker: "kafka", Contender: "raw", Role: "raw", Size: 1024, Conc: 4, Round: round, MsgsPerSec: x.raw, CPUPerMsgUS: 10},
			result{Kind: "throughput", Broker: "kafka", Contender: "mq", Role: "mq", Size: 1024, Conc: 4, Round: round, MsgsPerSec: x.mq, CPUPerMsgUS: 10},
			result{Kind: "throughput", Broker: "kafka", Contender: franzConsumeName, Size: 1024, Conc: 4, Round: round, MsgsPerSec: x.franz, CPUPerMsgUS: 20})
	}
	writeLines(t, in, lines...)
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(in, out, filepath.Join(dir, "no-notes.md")); err != nil {
		t.Fatalf("writeReport: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(data)
	for _, want := range []string{
		"Target: throughput ≥ 1.0 (1 held, 0 missed, 0 within noise)",
		"| kafka | 1 KiB | 4 | 1.141 [1.100–1.182] | 1.100–1.182 (50 %) | 0.500 [0.500–0.500] | 0.500–0.500 (50 %) |",
		"| 1 KiB | 4 | 1.200 [1.100–1.300] | 1.100–1.300 (50 %) | 1.000 [1.000–1.000] | 1.000–1.000 (50 %) |", // mq/raw
		"- **franz-go-consume** (the reference of the mq/franz-go-consume ratios): franz note.",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q; got:\n%s", want, report)
		}
	}
}

// TestConsumeOnly runs a memory contender held by -consume-only: the
// run must be a holder, release every message to the consumer and
// close cleanly.
func TestConsumeOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	var ct contender
	for _, c := range memoryContenders() {
		if c.Role == "mq" {
			ct = consumeOnly(c)
		}
	}
	if !strings.Contains(ct.Note, consumeOnlyNote) {
		t.Errorf("note %q lacks the consume-only note", ct.Note)
	}
	r, err := ct.Start(ctx, cell{Size: 16, Conc: 2, Batch: 1}, func(int64) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(holder); !ok {
		t.Errorf("a consume-only run is not a holder")
	}
	if err := r.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
	_ = r.Delete(ctx)
	res := throughputRun(ctx, "memory", ct, cell{Size: 16, Conc: 2, Batch: 1}, 300, 30, 0, time.Minute)
	if res.Error != "" || res.Msgs != 300 || res.MsgsPerSec <= 0 || res.PublishPerSec != 0 {
		t.Errorf("got %+v, want 300 messages timed from the release (no publish rate)", res)
	}
}

// TestReportProducerTargets checks the Kafka producer's targets: mq
// divided per round by the faster of franz-go and Sarama at
// concurrency 1, by franz-go at concurrency 16, by raw in CPU per
// message, and its lone Publish p50 by each reference's. It also checks
// that a -contenders expression with '|' does not break the Mode row.
func TestReportProducerTargets(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	lines := []any{
		machineHeader{Kind: "machine", Mode: "full", CPUs: 2, Go: "go1.26", Rounds: 2, Sizes: []int{1024}, Concs: []int{1, 16},
			Args: []string{"-contenders", "^(raw|mq|franz-go|sarama)$"},
			Msgs: map[string]int{"kafka": 100}, PerConc: map[string]bool{"kafka": true}, Batch: map[string]int{"kafka": 1}, Rates: map[string]int{"kafka": 10}},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "raw", Role: "raw"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "mq", Role: "mq"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "franz-go"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "sarama"},
		contenderInfo{Kind: "contender", Broker: "kafka", Contender: "mq+snappy"},
	}
	for round, x := range []float64{10000, 12000} { // franz-go at conc 16: 4000, 5000
		lines = append(lines, result{Kind: "throughput", Broker: "kafka", Contender: "mq+snappy", Size: 1024, Conc: 16, Round: round, MsgsPerSec: x, CPUPerMsgUS: 5})
	}
	type rates struct{ raw, mq, franz, sarama float64 }
	for conc, rounds := range map[int][]rates{
		1:  {{500, 1000, 900, 1100}, {500, 1200, 1000, 800}}, // faster: sarama 1100, then franz-go 1000
		16: {{5000, 8000, 4000, 3000}, {5000, 9000, 5000, 9900}},
	} {
		for round, x := range rounds {
			lines = append(lines,
				result{Kind: "throughput", Broker: "kafka", Contender: "raw", Role: "raw", Size: 1024, Conc: conc, Round: round, MsgsPerSec: x.raw, CPUPerMsgUS: 10},
				result{Kind: "throughput", Broker: "kafka", Contender: "mq", Role: "mq", Size: 1024, Conc: conc, Round: round, MsgsPerSec: x.mq, CPUPerMsgUS: 5},
				result{Kind: "throughput", Broker: "kafka", Contender: "franz-go", Size: 1024, Conc: conc, Round: round, MsgsPerSec: x.franz, CPUPerMsgUS: 20},
				result{Kind: "throughput", Broker: "kafka", Contender: "sarama", Size: 1024, Conc: conc, Round: round, MsgsPerSec: x.sarama, CPUPerMsgUS: 20})
		}
	}
	for round, p50 := range []struct{ mq, franz, sarama float64 }{{180, 200, 150}, {200, 200, 160}} {
		lines = append(lines,
			result{Kind: "lone", Broker: "kafka", Contender: "mq", Round: round, PubP50: p50.mq},
			result{Kind: "lone", Broker: "kafka", Contender: "franz-go", Round: round, PubP50: p50.franz},
			result{Kind: "lone", Broker: "kafka", Contender: "sarama", Round: round, PubP50: p50.sarama})
	}
	writeLines(t, in, lines...)
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(in, out, filepath.Join(dir, "no-notes.md")); err != nil {
		t.Fatalf("writeReport: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(data)
	for _, want := range []string{
		"| Mode | full (`-contenders ^(raw\\|mq\\|franz-go\\|sarama)$`) |",
		"(franz-go and sarama, acks=all, one message per call) and against raw: per-round ratios, median [min–max] and confidence interval of the median (coverage); a lone Publish is the closed-loop run of the lone-Publish table (5 held, 1 missed, 1 within noise).",
		"| throughput ÷ the faster of franz-go and sarama ≥ 1.0 | 1 KiB | 1 | 1.055 [0.909–1.200] | 0.909–1.200 (50 %) | within noise |",
		"| throughput ÷ franz-go ≥ 1.5 | 1 KiB | 16 | 1.900 [1.800–2.000] | 1.800–2.000 (50 %) | held |",
		"| mq+snappy throughput ÷ franz-go (both snappy) ≥ 1.5 | 1 KiB | 16 | 2.450 [2.400–2.500] | 2.400–2.500 (50 %) | held |",
		"| CPU per message ÷ raw ≤ 1.10 | 1 KiB | 1 | 0.500 [0.500–0.500] | 0.500–0.500 (50 %) | held |",
		"| CPU per message ÷ raw ≤ 1.10 | 1 KiB | 16 | 0.500 [0.500–0.500] | 0.500–0.500 (50 %) | held |",
		"| lone Publish p50 ÷ franz-go's ≤ 1.0 | 1 KiB | 1 | 0.950 [0.900–1.000] | 0.900–1.000 (50 %) | held |",
		"| lone Publish p50 ÷ sarama's ≤ 1.0 | 1 KiB | 1 | 1.225 [1.200–1.250] | 1.200–1.250 (50 %) | **missed** |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q; got:\n%s", want, report)
		}
	}
}

// A report joined from several runs names each run's flags in its Mode
// row, a run at the defaults included.
func TestMergedModeNamesEachRun(t *testing.T) {
	var rs results
	rs.merge(machineHeader{}, true)
	rs.merge(machineHeader{Args: []string{"-brokers", "kafka"}}, false)
	if got, want := strings.Join(rs.machine.Args, " "), "(defaults) ; -brokers kafka"; got != want {
		t.Errorf("merged flags: got %q, want %q", got, want)
	}
}
