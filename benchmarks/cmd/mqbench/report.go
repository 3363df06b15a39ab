package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// results is a parsed results file.
type results struct {
	machine    machineHeader
	contenders map[string][]contenderInfo // by broker, in file order
	brokers    []string                   // in file order
	runs       []result
	nextRound  int                    // rounds of the next file read are numbered from here
	measured   map[string][]time.Time // by broker: when the files it comes from were measured
}

// readResults reads results files: comma-separated paths, merged in
// order (a broker measured in several files keeps the results of all).
// The machine line of the first file describes the run; the brokers,
// modules and settings of the others are added to it. Each file's rounds
// are numbered after the previous files', so that rounds of different
// files are never paired with each other.
//
// With replace, a broker measured in a later file keeps only that file's
// results instead: a new run of one broker then updates a report whose
// other brokers come from an older run.
func readResults(paths string, replace bool) (*results, error) {
	rs := &results{contenders: map[string][]contenderInfo{}, measured: map[string][]time.Time{}}
	for i, path := range strings.Split(paths, ",") {
		f := &results{contenders: map[string][]contenderInfo{}, nextRound: rs.nextRound}
		if err := f.read(path, true); err != nil {
			return nil, err
		}
		if i == 0 {
			rs.machine = f.machine
		} else {
			rs.merge(f.machine, false)
		}
		rs.nextRound = f.nextRound
		for _, b := range f.brokers {
			if replace {
				rs.runs = slices.DeleteFunc(rs.runs, func(r result) bool { return r.Broker == b })
				delete(rs.contenders, b)
				rs.measured[b] = nil
			}
			if !slices.Contains(rs.brokers, b) {
				rs.brokers = append(rs.brokers, b)
			}
			for _, c := range f.contenders[b] {
				known := slices.ContainsFunc(rs.contenders[b], func(k contenderInfo) bool { return k.Contender == c.Contender })
				if !known {
					rs.contenders[b] = append(rs.contenders[b], c)
				}
			}
			if !slices.ContainsFunc(rs.measured[b], f.machine.Time.Equal) {
				rs.measured[b] = append(rs.measured[b], f.machine.Time)
			}
		}
		rs.runs = append(rs.runs, f.runs...)
	}
	return rs, nil
}

// dates describes when each broker was measured, brokers measured at the
// same times together, or "" if every broker comes from the same runs.
func (rs *results) dates() string {
	var groups []string
	byWhen := map[string][]string{}
	for _, b := range rs.brokers {
		var ts []string
		for _, t := range rs.measured[b] {
			ts = append(ts, t.UTC().Format("2006-01-02 15:04"))
		}
		when := strings.Join(ts, " and ")
		if _, ok := byWhen[when]; !ok {
			groups = append(groups, when)
		}
		byWhen[when] = append(byWhen[when], b)
	}
	if len(groups) < 2 {
		return ""
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = strings.Join(byWhen[g], ", ") + " " + g
	}
	return strings.Join(parts, "; ")
}

func (rs *results) read(path string, first bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	base := rs.nextRound
	for line := 1; sc.Scan(); line++ {
		var kind struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(sc.Bytes(), &kind); err != nil {
			return fmt.Errorf("%s:%d: %v", path, line, err)
		}
		switch kind.Kind {
		case "machine":
			var m machineHeader
			if err = json.Unmarshal(sc.Bytes(), &m); err == nil {
				rs.merge(m, first)
			}
		case "contender":
			var c contenderInfo
			if err = json.Unmarshal(sc.Bytes(), &c); err == nil {
				if _, ok := rs.contenders[c.Broker]; !ok {
					rs.brokers = append(rs.brokers, c.Broker)
				}
				// Merged files name the same contenders: each gets one
				// column, described as the first file describes it.
				known := slices.ContainsFunc(rs.contenders[c.Broker], func(k contenderInfo) bool { return k.Contender == c.Contender })
				if !known {
					rs.contenders[c.Broker] = append(rs.contenders[c.Broker], c)
				}
			}
		default:
			var r result
			if err = json.Unmarshal(sc.Bytes(), &r); err == nil {
				r.Round += base
				rs.nextRound = max(rs.nextRound, r.Round+1)
				if !slices.Contains(rs.brokers, r.Broker) {
					rs.brokers = append(rs.brokers, r.Broker)
				}
				rs.runs = append(rs.runs, r)
			}
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %v", path, line, err)
		}
	}
	return sc.Err()
}

// merged returns dst with src's entries added, dst made if nil.
func merged[V any](dst, src map[string]V) map[string]V {
	if dst == nil {
		dst = map[string]V{}
	}
	maps.Copy(dst, src)
	return dst
}

// merge adds a results file's machine line to the report's.
func (rs *results) merge(m machineHeader, first bool) {
	if first {
		rs.machine = m
		return
	}
	rs.machine.Brokers = merged(rs.machine.Brokers, m.Brokers)
	rs.machine.Modules = merged(rs.machine.Modules, m.Modules)
	rs.machine.Msgs = merged(rs.machine.Msgs, m.Msgs)
	rs.machine.PerConc = merged(rs.machine.PerConc, m.PerConc)
	rs.machine.Batch = merged(rs.machine.Batch, m.Batch)
	rs.machine.Rates = merged(rs.machine.Rates, m.Rates)
	args := append(slices.Clone(runArgs(rs.machine.Args)), ";")
	rs.machine.Args = append(args, runArgs(m.Args)...)
}

// runArgs is a run's flags for the Mode row: "(defaults)" when it had
// none, so that the runs of a merged report stay apart.
func runArgs(args []string) []string {
	if len(args) == 0 {
		return []string{"(defaults)"}
	}
	return args
}

// rounds returns the most throughput rounds any cell has of the
// contenders of the mq/raw ratios (raw, raw+contract, mq) and of the
// others, counted from the runs, so that merged files count right.
func (rs *results) rounds() (ratio, other int) {
	type id struct {
		broker, contender string
		k                 key
	}
	n := map[id]int{}
	for _, r := range rs.runs {
		if r.Kind != "throughput" || r.Size == 0 {
			continue
		}
		i := id{r.Broker, r.Contender, key{r.Size, r.Conc}}
		n[i]++
		if isRatio(r.Role, r.Contender) {
			ratio = max(ratio, n[i])
		} else {
			other = max(other, n[i])
		}
	}
	return ratio, other
}

// key identifies a throughput cell.
type key struct {
	size, conc int
}

// writeReport turns a results file into the Markdown report at out,
// with the Markdown file notes (if it exists) after the targets: the
// analysis written by hand for the run the report shows.
func writeReport(in, out, notes string) error {
	return writeReportFrom(in, out, notes, false)
}

// writeReportFrom is writeReport with readResults' replace.
func writeReportFrom(in, out, notes string, replace bool) error {
	rs, err := readResults(in, replace)
	if err != nil {
		return err
	}
	var w bytes.Buffer
	m := rs.machine
	fmt.Fprintf(&w, "# Benchmarks\n\n")
	fmt.Fprintf(&w, "Generated by benchmarks/cmd/mqbench (what `make bench` runs) from `%s` (in benchmarks/); do not edit by hand. ", strings.ReplaceAll(in, ",", "`, `"))
	if replace && strings.Contains(in, ",") {
		fmt.Fprintf(&w, "A broker found in a later file is reported from that file alone (`-report-replace`). ")
	}
	fmt.Fprintf(&w, "Regenerate the tables from a results file with `go run ./cmd/mqbench -report-from results/FILE.jsonl`.\n\n")
	if m.Note != "" {
		fmt.Fprintf(&w, "**Conditions: %s.** Absolute numbers on such a machine move from run to run; the ratios between contenders measured in the same paired rounds are the result to read.\n\n", m.Note)
	}
	fmt.Fprintf(&w, "## Machine, versions, configuration\n\n")
	fmt.Fprintf(&w, "| | |\n|---|---|\n")
	if d := rs.dates(); d != "" {
		fmt.Fprintf(&w, "| Date (UTC) | %s |\n", d)
	} else {
		fmt.Fprintf(&w, "| Date (UTC) | %s |\n", m.Time.Format("2006-01-02 15:04"))
	}
	fmt.Fprintf(&w, "| Mode | %s (`%s`) |\n", m.Mode, tableCode(strings.Join(m.Args, " ")))
	fmt.Fprintf(&w, "| CPU | %d × %s (nproc %d, GOMAXPROCS %d) |\n", m.CPUs, m.CPUModel, m.CPUs, m.GOMAXPROCS)
	fmt.Fprintf(&w, "| Kernel | Linux %s |\n", m.Kernel)
	fmt.Fprintf(&w, "| Go | %s |\n", m.Go)
	for _, b := range rs.brokers {
		if v, ok := m.Brokers[b]; ok {
			fmt.Fprintf(&w, "| Broker %s | %s, on the same machine, 127.0.0.1 |\n", b, v)
		}
	}
	mods := make([]string, 0, len(m.Modules))
	for k := range m.Modules {
		mods = append(mods, k)
	}
	sort.Strings(mods)
	for _, k := range mods {
		fmt.Fprintf(&w, "| %s | %s |\n", k, m.Modules[k])
	}
	if ratio, other := rs.rounds(); other > 0 && ratio > other {
		fmt.Fprintf(&w, "| Rounds per cell | %d for raw, raw+contract, mq, franz-go-consume, franz-go and sarama (the targets' ratios), %d for the other contenders (paired: every contender once per round, order reversed every other round) |\n", ratio, other)
	} else {
		fmt.Fprintf(&w, "| Rounds per cell | %d (paired: every contender once per round, order reversed every other round) |\n", max(ratio, other))
	}
	if s := stealSummary(rs.runs); s != "" {
		fmt.Fprintf(&w, "| Hypervisor steal (timed part of throughput runs, share of the machine's CPUs) | %s |\n", s)
	}
	fmt.Fprintf(&w, "| Body sizes | %s bytes |\n", joinInts(m.Sizes))
	fmt.Fprintf(&w, "| Concurrency | %s |\n", joinInts(m.Concs))
	for _, b := range rs.brokers {
		if n, ok := m.Msgs[b]; ok {
			formula := fmt.Sprint(n)
			if m.PerConc[b] {
				formula += " × conc/16"
			}
			formula += ", a quarter of that for bodies over 8 KiB"
			if m.Mode == "short" {
				formula += ", ÷ 5 in short mode"
			}
			formula += ", at least 200"
			if m.Scale != 1 {
				formula += fmt.Sprintf(" × %g (-scale)", m.Scale)
			}
			fmt.Fprintf(&w, "| Messages per run, %s | %s; %d per Publish call; latency at %d msg/s |\n", b, formula, m.Batch[b], m.Rates[b])
		}
	}
	fmt.Fprintf(&w, "\n")
	writeMethod(&w, m)
	writeTargets(&w, rs)
	if notes != "" {
		if text, err := os.ReadFile(notes); err == nil {
			w.Write(bytes.TrimSpace(text))
			w.WriteString("\n\n")
		} else if !os.IsNotExist(err) {
			return err
		}
	}
	for _, b := range rs.brokers {
		writeBroker(&w, rs, b)
	}
	return os.WriteFile(out, w.Bytes(), 0o644)
}

// stealHigh is the steal share above which stealSummary names a run:
// such a run was measured on a machine noticeably slower than the rest.
const stealHigh = 0.05

// stealSummary describes the hypervisor steal over the throughput runs
// that recorded it: median, worst run and how many were above stealHigh.
// It is "" when no run recorded it.
func stealSummary(runs []result) string {
	var xs []float64
	var worst result
	high := 0
	for _, r := range runs {
		if r.Kind != "throughput" || r.Steal == nil {
			continue
		}
		if len(xs) == 0 || *r.Steal > *worst.Steal {
			worst = r
		}
		if *r.Steal > stealHigh {
			high++
		}
		xs = append(xs, *r.Steal)
	}
	if len(xs) == 0 {
		return ""
	}
	return fmt.Sprintf("median %.1f %%, worst %.1f %% (%s %s, %s, conc %d, round %d); %d of %d runs above %.0f %%",
		100*median(xs), 100**worst.Steal, worst.Broker, worst.Contender, sizeName(worst.Size), worst.Conc, worst.Round, high, len(xs), 100*stealHigh)
}

// stealCell formats a run's steal share for a table ("n/a" when the run
// did not record it).
func stealCell(s *float64) string {
	if s == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %%", 100**s)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func writeMethod(w *bytes.Buffer, m machineHeader) {
	fmt.Fprintf(w, `## Method

- **Throughput.** For every broker, body size and concurrency ("cell"), each round runs every contender once on a fresh
  topic (and group), in alternating order; extra rounds (see Rounds per cell) run only raw, raw+contract, mq and
  franz-go-consume, whose ratios are the targets. A run starts the consumer, publishes and consumes warm-up messages (discarded),
  then times N messages from the first publish until the consumer has handled the last one. *conc* goroutines publish
  (one message per call, ten on SQS, where SendMessageBatch is the client's best practice), and the consumer handles up to
  *conc* messages at once where the contender has such a setting. The handler does nothing but count.
- **msg/s** is N over that time: median over the rounds, with [min–max].
- **CPU µs/msg** is the process's user+system CPU time (getrusage RUSAGE_SELF) over the timed part, divided by N: client
  CPU for publishing and consuming together (the brokers run in other processes). **allocs/msg** is the
  runtime.MemStats.Mallocs difference divided by N. Both are medians over the rounds.
- **mq/raw** divides mq's result by the raw client's *in the same round*, then takes the median and [min–max] of those
  per-round ratios. Targets: throughput ≥ 0.95, CPU per message ≤ 1.10.
- **Confidence interval of the median** ratio: the order statistics x(k+1) and x(n−k) of the n per-round ratios, with
  the largest k whose coverage, 1 − 2·P(B ≤ k) for B ~ Binomial(n, ½), is at least 85 %% (seven rounds: the 2nd smallest
  and 2nd largest, 87.5 %%). It assumes nothing about the distribution of the ratios, only that rounds are independent.
- **Latency.** Open-loop: a scheduler gives message i the send slot t0 + i/rate, a pool of 64 publishers sends each at
  its slot (one message per Publish) with the slot time in a header, and the consumer computes now − slot. Because the
  slot, not the actual send, is the start, a publisher that falls behind is charged for it (no coordinated omission).
  "Publish" is how long the Publish call took. 1 KiB bodies, %.0f s per contender after a warm-up.
- Every cell is filled: a contender that could not run says "n/a" and why.

`, m.LatencySecs)
}

// cellStats are the statistics of one contender in one cell.
type cellStats struct {
	ok                int
	rate, cpu, allocs []float64
	errs              []string
}

func statsOf(runs []result, broker, contender string, k key) cellStats {
	var s cellStats
	for _, r := range runs {
		if r.Kind != "throughput" || r.Broker != broker || r.Contender != contender || r.Size != k.size || r.Conc != k.conc {
			continue
		}
		if r.Error != "" {
			s.errs = append(s.errs, r.Error)
			continue
		}
		s.ok++
		s.rate = append(s.rate, r.MsgsPerSec)
		s.cpu = append(s.cpu, r.CPUPerMsgUS)
		s.allocs = append(s.allocs, r.AllocsPerMsg)
	}
	return s
}

// ratios returns the per-round ratios of the mq contender's throughput and
// CPU per message to the raw contender's in a cell.
func ratios(runs []result, broker string, k key) (tput, cpu []float64) {
	return ratiosTo(runs, broker, k, func(r *result) bool { return r.Role == "raw" })
}

// ratiosTo returns the per-round ratios of the mq contender's throughput
// and CPU per message to those of the contender ref picks, in a cell.
func ratiosTo(runs []result, broker string, k key, ref func(*result) bool) (tput, cpu []float64) {
	type pair struct{ mq, raw *result }
	byRound := map[int]*pair{}
	for i := range runs {
		r := &runs[i]
		if r.Kind != "throughput" || r.Broker != broker || r.Size != k.size || r.Conc != k.conc || r.Error != "" {
			continue
		}
		p := byRound[r.Round]
		if p == nil {
			p = &pair{}
			byRound[r.Round] = p
		}
		switch {
		case r.Role == "mq":
			p.mq = r
		case ref(r):
			p.raw = r
		}
	}
	rounds := make([]int, 0, len(byRound))
	for r := range byRound {
		rounds = append(rounds, r)
	}
	sort.Ints(rounds)
	for _, r := range rounds {
		p := byRound[r]
		if p.mq == nil || p.raw == nil {
			continue
		}
		tput = append(tput, p.mq.MsgsPerSec/p.raw.MsgsPerSec)
		cpu = append(cpu, p.mq.CPUPerMsgUS/p.raw.CPUPerMsgUS)
	}
	return tput, cpu
}

// cells returns the throughput cells measured on broker, sorted.
func cells(runs []result, broker string) []key {
	seen := map[key]bool{}
	var out []key
	for _, r := range runs {
		if r.Kind == "throughput" && r.Broker == broker && r.Size > 0 && !seen[key{r.Size, r.Conc}] {
			seen[key{r.Size, r.Conc}] = true
			out = append(out, key{r.Size, r.Conc})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].size != out[j].size {
			return out[i].size < out[j].size
		}
		return out[i].conc < out[j].conc
	})
	return out
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1024 && n%1024 == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// tableCode escapes s for a code span in a Markdown table cell, where a
// bare '|' would end the cell (a -contenders regular expression has
// them).
func tableCode(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// na is a table cell for a contender that did not run.
func na(errs []string) string {
	if len(errs) == 0 {
		return "n/a: not measured"
	}
	e := errs[0]
	if !strings.HasPrefix(e, "n/a: ") {
		e = "n/a: failed: " + e
	}
	e = strings.ReplaceAll(e, "|", "/")
	if len(e) > 160 {
		e = e[:157] + "..."
	}
	return e
}

func num(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

func withSpread(xs []float64) string {
	lo, hi := spread(xs)
	return fmt.Sprintf("%s [%s–%s]", num(median(xs)), num(lo), num(hi))
}

// ratio formats a ratio with three decimals, so that one just under a
// target (0.945 against 0.95) does not print as meeting it.
func ratio(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", x)
}

func ratioSpread(xs []float64) string {
	lo, hi := spread(xs)
	return fmt.Sprintf("%s [%s–%s]", ratio(median(xs)), ratio(lo), ratio(hi))
}

// ratioCI formats the confidence interval of the median of the per-round
// ratios xs (see medianCI).
func ratioCI(xs []float64) string {
	lo, hi, cov := medianCI(xs)
	return fmt.Sprintf("%s–%s (%.0f %%)", ratio(lo), ratio(hi), 100*cov)
}

// verdict is how a cell's per-round ratios stand against a target: the
// median's confidence interval lies on the target's side (held), on the
// other side (missed), or straddles it (within the noise of the run).
type verdict int

const (
	held verdict = iota
	missed
	withinNoise
)

// judge returns the verdict of the per-round ratios xs against limit;
// atMost says the target is ≤ limit (CPU), else ≥ limit (throughput).
func judge(xs []float64, limit float64, atMost bool) verdict {
	lo, hi, _ := medianCI(xs)
	if !atMost {
		lo, hi = -hi, -lo
		limit = -limit
	}
	switch {
	case hi <= limit:
		return held
	case lo > limit:
		return missed
	}
	return withinNoise
}

// verdicts counts cells by verdict, for the targets table.
type verdicts [3]int

func (v verdicts) String() string {
	return fmt.Sprintf("%d held, %d missed, %d within noise", v[held], v[missed], v[withinNoise])
}

func failedNote(s cellStats) string {
	if len(s.errs) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d round(s) failed: %s)", len(s.errs), strings.TrimPrefix(na(s.errs), "n/a: "))
}

func writeTargets(w *bytes.Buffer, rs *results) {
	fmt.Fprintf(w, "## Targets\n\n")
	fmt.Fprintf(w, "Medians of the per-round mq/raw ratios, worst cell and median over cells. Target: throughput ≥ 0.95, CPU per message ≤ 1.10.\n\n")
	fmt.Fprintf(w, "A cell *held* a target when the whole confidence interval of its median ratio is on the target's side, *missed* it when the whole interval is on the other side, and is *within noise* when the interval straddles the target: that run cannot tell (see the per-broker tables and the Method).\n\n")
	fmt.Fprintf(w, "| Broker | mq/raw throughput: worst cell (median over cells) | ≥ 0.95 everywhere | cells | mq/raw CPU/msg: worst cell (median over cells) | ≤ 1.10 everywhere | cells |\n|---|---|---|---|---|---|---|\n")
	for _, b := range rs.brokers {
		var tMeds, cMeds []float64
		var worstT, worstC key
		var vT, vC verdicts
		for _, k := range cells(rs.runs, b) {
			t, c := ratios(rs.runs, b, k)
			if len(t) == 0 {
				continue
			}
			vT[judge(t, 0.95, false)]++
			vC[judge(c, 1.10, true)]++
			mt, mc := median(t), median(c)
			if len(tMeds) == 0 || mt < slices.Min(tMeds) {
				worstT = k
			}
			if len(cMeds) == 0 || mc > slices.Max(cMeds) {
				worstC = k
			}
			tMeds = append(tMeds, mt)
			cMeds = append(cMeds, mc)
		}
		if len(tMeds) == 0 {
			fmt.Fprintf(w, "| %s | n/a: no paired mq and raw rounds | n/a | n/a | n/a | n/a | n/a |\n", b)
			continue
		}
		okT, okC := yesNo(slices.Min(tMeds) >= 0.95), yesNo(slices.Max(cMeds) <= 1.10)
		cellsT, cellsC := vT.String(), vC.String()
		if b == "memory" {
			okT = "not a target: raw is a bare channel, the floor"
			okC, cellsT, cellsC = okT, "", ""
		}
		fmt.Fprintf(w, "| %s | %s at %s, conc %d (%s) | %s | %s | %s at %s, conc %d (%s) | %s | %s |\n", b,
			ratio(slices.Min(tMeds)), sizeName(worstT.size), worstT.conc, ratio(median(tMeds)), okT, cellsT,
			ratio(slices.Max(cMeds)), sizeName(worstC.size), worstC.conc, ratio(median(cMeds)), okC, cellsC)
	}
	writeFranzConsumeTargets(w, rs)
	writeProducerTargets(w, rs)
	// Memory: mq against Watermill's GoChannel.
	if slices.Contains(rs.brokers, "memory") {
		var xs []float64
		for _, k := range cells(rs.runs, "memory") {
			a := statsOf(rs.runs, "memory", "mq", k)
			g := statsOf(rs.runs, "memory", "watermill-gochannel", k)
			if a.ok > 0 && g.ok > 0 {
				xs = append(xs, median(a.rate)/median(g.rate))
			}
		}
		if len(xs) > 0 {
			fmt.Fprintf(w, "\nmq memory against Watermill GoChannel (throughput, medians): %s× in the worst cell, %s× median over cells (target: several times).\n", num(slices.Min(xs)), num(median(xs)))
		}
	}
	fmt.Fprintf(w, "\n")
}

// isFranzConsume picks the franz-go-consume contender's runs.
func isFranzConsume(r *result) bool { return r.Contender == franzConsumeName }

// writeFranzConsumeTargets writes, under the Targets table, mq's
// throughput and CPU per message divided by franz-go-consume's, per
// round, in each cell where both ran: target throughput ≥ 1.0.
func writeFranzConsumeTargets(w *bytes.Buffer, rs *results) {
	var rows []string
	var v verdicts
	for _, b := range rs.brokers {
		for _, k := range cells(rs.runs, b) {
			t, c := ratiosTo(rs.runs, b, k, isFranzConsume)
			if len(t) == 0 {
				continue
			}
			v[judge(t, 1.0, false)]++
			rows = append(rows, fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s |\n", b, sizeName(k.size), k.conc, ratioSpread(t), ratioCI(t), ratioSpread(c), ratioCI(c)))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nmq against franz-go-consume (raw's kafka-go producer, a franz-go PollFetches consumer committing marked offsets at mq's default commit interval): per-round ratios, median [min–max] and confidence interval of the median (coverage). Target: throughput ≥ 1.0 (%s).\n\n", v)
	fmt.Fprintf(w, "| Broker | size | conc | mq/franz-go-consume throughput | CI | CPU per message | CI |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		w.WriteString(r)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func writeBroker(w *bytes.Buffer, rs *results, b string) {
	cs := rs.contenders[b]
	fmt.Fprintf(w, "## %s\n\n", b)
	for _, r := range rs.runs {
		if r.Broker == b && r.Contender == "" && r.Error != "" {
			fmt.Fprintf(w, "Not measured: %s.\n\n", strings.TrimPrefix(r.Error, "n/a: "))
			return
		}
	}
	ks := cells(rs.runs, b)
	header := func(title string) {
		fmt.Fprintf(w, "### %s\n\n| size | conc |", title)
		for _, c := range cs {
			fmt.Fprintf(w, " %s |", c.Contender)
		}
		fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---|", len(cs)))
	}
	header("Throughput, msg/s: median [min–max]")
	for _, k := range ks {
		fmt.Fprintf(w, "| %s | %d |", sizeName(k.size), k.conc)
		for _, c := range cs {
			s := statsOf(rs.runs, b, c.Contender, k)
			if s.ok == 0 {
				fmt.Fprintf(w, " %s |", na(s.errs))
				continue
			}
			fmt.Fprintf(w, " %s%s |", withSpread(s.rate), failedNote(s))
		}
		fmt.Fprintf(w, "\n")
	}
	fmt.Fprintf(w, "\n")
	header("Client cost per message: CPU µs · allocations (medians)")
	for _, k := range ks {
		fmt.Fprintf(w, "| %s | %d |", sizeName(k.size), k.conc)
		for _, c := range cs {
			s := statsOf(rs.runs, b, c.Contender, k)
			if s.ok == 0 {
				fmt.Fprintf(w, " %s |", na(s.errs))
				continue
			}
			fmt.Fprintf(w, " %s µs · %s |", num(median(s.cpu)), num(median(s.allocs)))
		}
		fmt.Fprintf(w, "\n")
	}
	writeCalls(w, rs, b, cs, ks)
	fmt.Fprintf(w, "\n### mq/raw, per round: median [min–max], confidence interval of the median (coverage)\n\n| size | conc | throughput | CI | CPU per message | CI |\n|---|---|---|---|---|---|\n")
	for _, k := range ks {
		t, c := ratios(rs.runs, b, k)
		if len(t) == 0 {
			fmt.Fprintf(w, "| %s | %d | n/a: no round with both mq and raw | n/a | n/a: no round with both mq and raw | n/a |\n", sizeName(k.size), k.conc)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", sizeName(k.size), k.conc, ratioSpread(t), ratioCI(t), ratioSpread(c), ratioCI(c))
	}
	fmt.Fprintf(w, "\n### Latency, µs (open loop, 1 KiB)\n\n| contender | rate msg/s | e2e p50 | e2e p99 | e2e p99.9 | Publish p50 | Publish p99 | Publish p99.9 | received | steal |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cs {
		var lr *result
		for i := range rs.runs {
			if r := &rs.runs[i]; r.Kind == "latency" && r.Broker == b && r.Contender == c.Contender {
				lr = r
			}
		}
		switch {
		case lr == nil:
			fmt.Fprintf(w, "| %s | n/a: latency not measured in this run |%s\n", c.Contender, strings.Repeat(" n/a |", 8))
		case lr.Received == 0:
			fmt.Fprintf(w, "| %s | %s |%s\n", c.Contender, na([]string{lr.Error}), strings.Repeat(" n/a |", 8))
		default:
			note := ""
			if lr.Error != "" {
				note = " (" + strings.TrimPrefix(na([]string{lr.Error}), "n/a: ") + ")"
			}
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %d of %d%s | %s |\n", c.Contender, lr.Rate,
				num(lr.E2EP50), num(lr.E2EP99), num(lr.E2EP999), num(lr.PubP50), num(lr.PubP99), num(lr.PubP999), lr.Received, lr.Received+lr.NotArrived, note, stealCell(lr.Steal))
		}
	}
	writeLone(w, rs, b, cs)
	fmt.Fprintf(w, "\n### Contenders\n\n")
	for _, c := range cs {
		role := ""
		switch c.Role {
		case "raw":
			role = " (the reference of the mq/raw ratios)"
		case "mq":
			role = " (measured by the mq/raw ratios)"
		}
		if c.Contender == franzConsumeName {
			role = " (the reference of the mq/franz-go-consume ratios)"
		}
		text := c.Note
		if c.NA != "" {
			text = "n/a: " + c.NA
		}
		fmt.Fprintf(w, "- **%s**%s: %s.\n", c.Contender, role, strings.TrimSuffix(text, "."))
	}
	fmt.Fprintf(w, "\n")
}

// writeCalls writes the API calls per message of the contenders that
// report them (SQS), medians over the rounds.
func writeCalls(w *bytes.Buffer, rs *results, b string, cs []contenderInfo, ks []key) {
	any := false
	for _, r := range rs.runs {
		if r.Broker == b && len(r.APICallsPerMsg) > 0 {
			any = true
		}
	}
	if !any {
		return
	}
	fmt.Fprintf(w, "\n### API calls per message (medians; each is an HTTP request)\n\n| size | conc |")
	for _, c := range cs {
		fmt.Fprintf(w, " %s |", c.Contender)
	}
	fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---|", len(cs)))
	for _, k := range ks {
		fmt.Fprintf(w, "| %s | %d |", sizeName(k.size), k.conc)
		for _, c := range cs {
			per := map[string][]float64{}
			for _, r := range rs.runs {
				if r.Kind == "throughput" && r.Broker == b && r.Contender == c.Contender && r.Size == k.size && r.Conc == k.conc && r.Error == "" {
					for op, v := range r.APICallsPerMsg {
						per[op] = append(per[op], v)
					}
				}
			}
			if len(per) == 0 {
				fmt.Fprintf(w, " n/a |")
				continue
			}
			ops := make([]string, 0, len(per))
			for op := range per {
				ops = append(ops, op)
			}
			sort.Strings(ops)
			parts := make([]string, len(ops))
			for i, op := range ops {
				parts[i] = fmt.Sprintf("%s %.3f", op, median(per[op]))
			}
			fmt.Fprintf(w, " %s |", strings.Join(parts, "<br>"))
		}
		fmt.Fprintf(w, "\n")
	}
}

// writeLone writes the lone-Publish table of broker b, if it was
// measured: per contender, the median over rounds of each run's Publish
// p50 with [min–max] and its confidence interval, and the medians of the
// other quantiles, and each contender's Publish p50 divided by mq's, per
// round.
func writeLone(w *bytes.Buffer, rs *results, b string, cs []contenderInfo) {
	by := map[string][]result{}
	for _, r := range rs.runs {
		if r.Kind == "lone" && r.Broker == b && r.Error == "" {
			by[r.Contender] = append(by[r.Contender], r)
		}
	}
	if len(by) == 0 {
		return
	}
	mqP50 := map[int]float64{}
	for _, r := range by["mq"] {
		mqP50[r.Round] = r.PubP50
	}
	fmt.Fprintf(w, "\n### Lone Publish, µs (closed loop, concurrency 1, 1 KiB; medians over rounds)\n\n| contender | rounds | Publish p50 [min–max] | CI | Publish p99 | e2e p50 | CPU µs/msg | Publish p50 ÷ mq's, per round: median [min–max] | CI |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cs {
		runs := by[c.Contender]
		if len(runs) == 0 {
			continue
		}
		var p50, p99, e2e, cpu, rel []float64
		for _, r := range runs {
			p50 = append(p50, r.PubP50)
			p99 = append(p99, r.PubP99)
			e2e = append(e2e, r.E2EP50)
			cpu = append(cpu, r.CPUPerMsgUS)
			if m, ok := mqP50[r.Round]; ok && m > 0 {
				rel = append(rel, r.PubP50/m)
			}
		}
		lo, hi, cov := medianCI(p50)
		relCell, relCI := "n/a", "n/a"
		if len(rel) > 0 {
			relCell, relCI = ratioSpread(rel), ratioCI(rel)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s–%s (%.0f %%) | %s | %s | %s | %s | %s |\n", c.Contender, len(runs), withSpread(p50),
			num(lo), num(hi), 100*cov, num(median(p99)), num(median(e2e)), num(median(cpu)), relCell, relCI)
	}
}
