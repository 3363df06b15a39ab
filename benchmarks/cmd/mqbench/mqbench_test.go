package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
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
		result{Kind: "latency", Broker: "kafka", Contender: "mq", Rate: 10, Received: 10, E2EP50: 1, E2EP99: 2, E2EP999: 3, PubP50: 1, PubP99: 1, PubP999: 1},
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
		"| 1 KiB | 4 | 1500 [1000–2000] | 1395 [990–1800] | n/a: cannot be had |", // throughput medians
		"| 1 KiB | 4 | 0.945 [0.900–0.990] | 1.125 [1.050–1.200] |",               // per-round ratios
		"| kafka | 0.945 at 1 KiB, conc 4 (0.945) | **no** | 1.125 at 1 KiB, conc 4 (1.125) | **no** |",
		"| other | n/a: cannot be had |",
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
		"| 1 KiB | 4 | 0.950 [0.900–1.000] | 1.200 [1.100–1.300] |", // one ratio per file's round
		"| Rounds per cell | 2 for raw, raw+contract and mq (the mq/raw ratios), 1 for the other contenders",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("report lacks %q; got:\n%s", want, data)
		}
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
