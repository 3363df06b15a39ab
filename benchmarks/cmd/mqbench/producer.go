package main

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
)

// The Kafka producer's targets against the clients a Kafka user would
// pick instead, each a per-round ratio judged by the confidence interval
// of its median (see judge).
const (
	franzName  = "franz-go"
	saramaName = "sarama"
	snappyName = "mq+snappy" // mq compressing with snappy, as franz-go does by default

	conc1Target  = 1.0  // conc-1 throughput ÷ the faster of franz-go and Sarama, at least
	conc16Target = 1.5  // conc-16 throughput ÷ franz-go, at least
	cpuTarget    = 1.10 // CPU per message ÷ raw, at most
	loneTarget   = 1.0  // lone Publish p50 ÷ each reference's, at most
)

// roundRates returns, per round, the throughput of each contender in
// names that ran without error in broker's cell k.
func roundRates(runs []result, broker string, k key, names ...string) map[int]map[string]float64 {
	by := map[int]map[string]float64{}
	for _, r := range runs {
		if r.Kind != "throughput" || r.Broker != broker || r.Size != k.size || r.Conc != k.conc || r.Error != "" || !slices.Contains(names, r.Contender) {
			continue
		}
		if by[r.Round] == nil {
			by[r.Round] = map[string]float64{}
		}
		by[r.Round][r.Contender] = r.MsgsPerSec
	}
	return by
}

// fasterRatios returns, per round in which mq and every reference ran,
// mq's throughput divided by the fastest reference's in that round.
func fasterRatios(runs []result, broker string, k key, refs ...string) []float64 {
	return fasterRatiosOf(runs, broker, k, "mq", refs...)
}

// fasterRatiosOf is fasterRatios with contender name in mq's place.
func fasterRatiosOf(runs []result, broker string, k key, name string, refs ...string) []float64 {
	by := roundRates(runs, broker, k, append([]string{name}, refs...)...)
	rounds := make([]int, 0, len(by))
	for r := range by {
		rounds = append(rounds, r)
	}
	sort.Ints(rounds)
	var out []float64
	for _, r := range rounds {
		rates := by[r]
		if len(rates) != len(refs)+1 {
			continue
		}
		best := 0.0
		for _, ref := range refs {
			best = max(best, rates[ref])
		}
		if best > 0 {
			out = append(out, rates[name]/best)
		}
	}
	return out
}

// loneRatios returns, per round in which both ran, mq's lone Publish p50
// divided by ref's.
func loneRatios(runs []result, broker, ref string) []float64 {
	mq, other := map[int]float64{}, map[int]float64{}
	for _, r := range runs {
		if r.Kind != "lone" || r.Broker != broker || r.Error != "" {
			continue
		}
		switch r.Contender {
		case "mq":
			mq[r.Round] = r.PubP50
		case ref:
			other[r.Round] = r.PubP50
		}
	}
	rounds := make([]int, 0, len(mq))
	for r := range mq {
		rounds = append(rounds, r)
	}
	sort.Ints(rounds)
	var out []float64
	for _, r := range rounds {
		if o, ok := other[r]; ok && o > 0 {
			out = append(out, mq[r]/o)
		}
	}
	return out
}

// writeProducerTargets writes, under the Targets table, the Kafka
// producer's ratios to franz-go and Sarama (throughput at concurrency 1
// and 16, lone Publish p50) and to raw (CPU per message), when those
// contenders were measured.
func writeProducerTargets(w *bytes.Buffer, rs *results) {
	const b = "kafka"
	has := func(name string) bool {
		return slices.ContainsFunc(rs.contenders[b], func(c contenderInfo) bool { return c.Contender == name && c.NA == "" })
	}
	if !has("mq") || (!has(franzName) && !has(saramaName)) {
		return
	}
	var refs []string
	for _, n := range []string{franzName, saramaName} {
		if has(n) {
			refs = append(refs, n)
		}
	}
	var rows bytes.Buffer
	var v verdicts
	row := func(what string, k key, xs []float64, limit float64, atMost bool) {
		if len(xs) == 0 {
			fmt.Fprintf(&rows, "| %s | %s | %d | n/a: no round with all of them | n/a | n/a |\n", what, sizeName(k.size), k.conc)
			return
		}
		vd := judge(xs, limit, atMost)
		v[vd]++
		fmt.Fprintf(&rows, "| %s | %s | %d | %s | %s | %s |\n", what, sizeName(k.size), k.conc, ratioSpread(xs), ratioCI(xs), verdictName(vd))
	}
	faster := "throughput ÷ the faster of " + joinNames(refs) + fmt.Sprintf(" ≥ %.1f", conc1Target)
	ks := cells(rs.runs, b)
	measured := map[int]bool{}
	for _, k := range ks {
		measured[k.conc] = true
		switch k.conc {
		case 1:
			row(faster, k, fasterRatios(rs.runs, b, k, refs...), conc1Target, false)
		case 16:
			if has(franzName) {
				row(fmt.Sprintf("throughput ÷ franz-go ≥ %.1f", conc16Target), k, fasterRatios(rs.runs, b, k, franzName), conc16Target, false)
			}
			if has(franzName) && has(snappyName) {
				// franz-go compresses with snappy by default and the
				// others do not: this row compares like with like.
				row(fmt.Sprintf("%s throughput ÷ franz-go (both snappy) ≥ %.1f", snappyName, conc16Target), k, fasterRatiosOf(rs.runs, b, k, snappyName, franzName), conc16Target, false)
			}
		}
	}
	for _, k := range ks {
		if k.conc == 1 || k.conc == 16 {
			_, cpu := ratios(rs.runs, b, k)
			row(fmt.Sprintf("CPU per message ÷ raw ≤ %.2f", cpuTarget), k, cpu, cpuTarget, true)
		}
	}
	for _, ref := range refs {
		row(fmt.Sprintf("lone Publish p50 ÷ %s's ≤ %.1f", ref, loneTarget), key{1024, 1}, loneRatios(rs.runs, b, ref), loneTarget, true)
	}
	fmt.Fprintf(w, "\nThe Kafka producer against the clients a Kafka user would pick instead (%s, acks=all, one message per call) and against raw: per-round ratios, median [min–max] and confidence interval of the median (coverage); a lone Publish is the closed-loop run of the lone-Publish table (%s).\n", joinNames(refs), v)
	for _, c := range []int{1, 16} {
		if !measured[c] {
			fmt.Fprintf(w, "Concurrency %d was not measured in this run: its targets have no row.\n", c)
		}
	}
	fmt.Fprintf(w, "\n| Kafka producer target | size | conc | per round | CI | verdict |\n|---|---|---|---|---|---|\n")
	w.Write(rows.Bytes())
}

func verdictName(v verdict) string {
	switch v {
	case held:
		return "held"
	case missed:
		return "**missed**"
	}
	return "within noise"
}

func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	out := names[0]
	for _, n := range names[1 : len(names)-1] {
		out += ", " + n
	}
	return out + " and " + names[len(names)-1]
}
