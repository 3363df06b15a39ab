package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// brokerPlan is what the harness measures on one broker.
type brokerPlan struct {
	Name        string
	Contenders  []contender
	NA          string  // why the broker cannot be measured (its address is not set)
	Msgs        int     // messages per throughput run of 16 B and 1 KiB at concurrency 16 (64 KiB: a quarter)
	PerConc     bool    // scale Msgs by conc/16: synchronous publishers' throughput grows with their number
	Batch       int     // messages per Publish call
	LatencyRate float64 // messages per second in the latency run
	Lone        bool    // measure a lone synchronous Publish (see loneRun)
}

type options struct {
	short       bool
	brokers     []string
	rounds      int
	ratioRounds int
	sizes       []int
	concs       []int
	latency     bool
	loneRounds  int
	loneCalls   int
	latencyDur  time.Duration
	scale       float64
	only        *regexp.Regexp
	out         string
	report      string
	reportFrom  string
	replace     bool
	cpuprofile  string
	note        string
	notes       string
	consumeOnly bool
}

func main() {
	log.SetFlags(log.Ltime)
	var o options
	var brokers, sizes, concs, only string
	flag.BoolVar(&o.short, "short", false, "quick check: 1 KiB, concurrency 4, 2 rounds, short latency runs (under 5 minutes)")
	flag.StringVar(&brokers, "brokers", "memory,kafka,rabbitmq,sqs", "brokers to measure, comma-separated")
	flag.IntVar(&o.rounds, "rounds", 0, "paired rounds per cell (default 3, -short 2)")
	flag.IntVar(&o.ratioRounds, "ratio-rounds", 0, "paired rounds per cell for the contenders of the targets' ratios (raw, raw+contract, mq, franz-go-consume, franz-go, sarama); the others run -rounds (default 7, -short 2; never fewer than -rounds)")
	flag.StringVar(&sizes, "sizes", "", "body sizes in bytes, comma-separated (default 16,1024,65536; -short 1024)")
	flag.StringVar(&concs, "conc", "", "concurrency levels, comma-separated (default 1,4,16; -short 4)")
	flag.BoolVar(&o.latency, "latency", true, "run the open-loop latency measurement")
	flag.IntVar(&o.loneRounds, "lone-rounds", -1, "paired rounds of the lone-Publish measurement (closed loop, concurrency 1, 1 KiB) on brokers that have it (default 7, -short 2; 0: none)")
	flag.IntVar(&o.loneCalls, "lone-calls", 0, "Publish calls per lone-Publish run (default 500, -short 200)")
	flag.DurationVar(&o.latencyDur, "latency-duration", 0, "length of each latency run (default 10s, -short 3s)")
	flag.Float64Var(&o.scale, "scale", 1, "multiply every run's message count by this")
	flag.StringVar(&only, "contenders", "", "regular expression: measure only matching contenders")
	flag.StringVar(&o.out, "out", "results", "directory for the JSON lines results")
	flag.StringVar(&o.report, "report", "../BENCHMARKS.md", "Markdown report to write ('' for none)")
	flag.StringVar(&o.reportFrom, "report-from", "", "write the report from these results files (comma-separated, merged) without measuring")
	flag.BoolVar(&o.replace, "report-replace", false, "with -report-from: a broker found in a later file keeps only that file's results (a new run of one broker over an older run of all)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&o.note, "machine-note", "", "describes the conditions of the run in the report, e.g. \"2-core VM shared with other work\"")
	flag.BoolVar(&o.consumeOnly, "consume-only", false, "throughput runs time the consumer alone: the timed messages are published first, held from the consumer, and the time runs from their release until the last is handled (no latency or lone-Publish change)")
	flag.StringVar(&o.notes, "notes", "notes.md", "Markdown file included in the report after the targets, if it exists")
	flag.Parse()

	if o.reportFrom != "" {
		if err := writeReportFrom(o.reportFrom, o.report, o.notes, o.replace); err != nil {
			log.Fatal(err)
		}
		return
	}
	o.brokers = strings.Split(brokers, ",")
	var err error
	if o.sizes, err = ints(sizes, o.short, []int{16, 1024, 65536}, []int{1024}); err != nil {
		log.Fatalf("-sizes: %v", err)
	}
	if o.concs, err = ints(concs, o.short, []int{1, 4, 16}, []int{4}); err != nil {
		log.Fatalf("-conc: %v", err)
	}
	if o.rounds == 0 {
		o.rounds = 3
		if o.short {
			o.rounds = 2
		}
	}
	if o.ratioRounds == 0 {
		o.ratioRounds = 7
		if o.short {
			o.ratioRounds = 2
		}
	}
	o.ratioRounds = max(o.ratioRounds, o.rounds)
	if o.loneRounds < 0 {
		o.loneRounds = 7
		if o.short {
			o.loneRounds = 2
		}
	}
	if o.loneCalls <= 0 {
		o.loneCalls = 500
		if o.short {
			o.loneCalls = 200
		}
	}
	if o.latencyDur == 0 {
		o.latencyDur = 10 * time.Second
		if o.short {
			o.latencyDur = 3 * time.Second
		}
	}
	if only != "" {
		if o.only, err = regexp.Compile(only); err != nil {
			log.Fatalf("-contenders: %v", err)
		}
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	path, err := measure(ctx, o)
	if err != nil {
		log.Print(err)
		if path == "" {
			pprof.StopCPUProfile()
			os.Exit(1)
		}
	}
	if o.report != "" {
		if err := writeReport(path, o.report, o.notes); err != nil {
			pprof.StopCPUProfile()
			log.Fatal(err)
		}
		log.Printf("wrote %s", o.report)
	}
}

// ints parses a comma-separated list, or returns the default for the mode.
func ints(s string, short bool, full, quick []int) ([]int, error) {
	if s == "" {
		if short {
			return quick, nil
		}
		return full, nil
	}
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// plans returns the brokers to measure, in the order given.
func plans(ctx context.Context, names []string) ([]brokerPlan, error) {
	var out []brokerPlan
	for _, name := range names {
		switch strings.TrimSpace(name) {
		case "memory":
			out = append(out, brokerPlan{Name: "memory", Contenders: memoryContenders(), Msgs: 30000, Batch: 1, LatencyRate: 5000})
		case "kafka":
			out = append(out, kafkaPlan())
		case "rabbitmq":
			out = append(out, rabbitPlan())
		case "sqs":
			out = append(out, sqsPlan(ctx))
		default:
			return nil, fmt.Errorf("unknown broker %q: want memory, kafka, rabbitmq or sqs", name)
		}
	}
	return out, nil
}

// measure runs every plan and writes the results file, whose path it
// returns.
func measure(ctx context.Context, o options) (string, error) {
	ps, err := plans(ctx, o.brokers)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return "", err
	}
	mode := "full"
	if o.short {
		mode = "short"
	}
	path := filepath.Join(o.out, time.Now().UTC().Format("20060102T150405Z")+"-"+mode+".jsonl")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	emit := func(v any) {
		if err := enc.Encode(v); err != nil {
			log.Printf("write %s: %v", path, err)
		}
	}
	emit(machineInfo(o, ps))
	start := time.Now()
	for _, p := range ps {
		cs := p.Contenders
		if o.only != nil {
			cs = slices.DeleteFunc(slices.Clone(cs), func(c contender) bool { return !o.only.MatchString(c.Name) })
		}
		if o.consumeOnly {
			cs = slices.Clone(cs)
			for i := range cs {
				cs[i] = consumeOnly(cs[i])
			}
		}
		for _, ct := range cs {
			emit(contenderInfo{Kind: "contender", Broker: p.Name, Contender: ct.Name, Role: ct.Role, Note: ct.Note, NA: ct.NA})
		}
		if p.NA != "" {
			log.Printf("%s: n/a: %s", p.Name, p.NA)
			emit(result{Kind: "throughput", Broker: p.Name, Error: "n/a: " + p.NA})
			continue
		}
		for _, size := range o.sizes {
			for _, conc := range o.concs {
				c := cell{Size: size, Conc: conc, Batch: p.Batch}
				n := runMsgs(p, c, o.short, o.scale)
				warm := max(n/20, 2*conc*p.Batch)
				for round := range o.ratioRounds {
					order := slices.Clone(cs)
					if round >= o.rounds {
						order = slices.DeleteFunc(order, func(c contender) bool { return !c.ratio() })
					}
					if round%2 == 1 {
						slices.Reverse(order) // paired rounds: alternate who goes first
					}
					for _, ct := range order {
						if ctx.Err() != nil {
							return path, ctx.Err()
						}
						res := throughputRun(ctx, p.Name, ct, c, n, warm, round, runLimit(p.Name, n))
						res.Goroutines = runtime.NumGoroutine()
						logResult(res)
						emit(res)
					}
				}
			}
		}
		if p.Lone {
			for round := range o.loneRounds {
				order := slices.Clone(cs)
				if round%2 == 1 {
					slices.Reverse(order)
				}
				for _, ct := range order {
					if ctx.Err() != nil {
						return path, ctx.Err()
					}
					res := loneRun(ctx, p.Name, ct, 1024, o.loneCalls, 20, round, runLimit(p.Name, o.loneCalls))
					res.Goroutines = runtime.NumGoroutine()
					logResult(res)
					emit(res)
				}
			}
		}
		if o.latency {
			for _, ct := range cs {
				if ctx.Err() != nil {
					return path, ctx.Err()
				}
				res := latencyRun(ctx, p.Name, ct, 1024, p.LatencyRate, o.latencyDur, 50, o.latencyDur+2*time.Minute)
				res.Goroutines = runtime.NumGoroutine()
				logResult(res)
				emit(res)
			}
		}
	}
	log.Printf("measured in %v; results in %s", time.Since(start).Round(time.Second), path)
	return path, nil
}

// runMsgs is the number of messages of one throughput run: enough for a
// few seconds on a small machine, so that setup costs and timer
// granularity do not matter, and no more, so that the full matrix fits
// in about half an hour.
func runMsgs(p brokerPlan, c cell, short bool, scale float64) int {
	n := p.Msgs
	if p.PerConc {
		n = n * c.Conc / 16
	}
	if c.Size > 8192 {
		n /= 4 // an eighth made 64 KiB runs at concurrency 16 last 0.3 s: too short to measure
	}
	if short {
		n /= 5
	}
	return max(int(float64(max(n, 200))*scale), 10*c.Batch)
}

// runLimit bounds one throughput run, setup and close included.
func runLimit(broker string, n int) time.Duration {
	return 2*time.Minute + time.Duration(n)*time.Millisecond
}

func logResult(r result) {
	switch {
	case r.Error != "":
		log.Printf("%-8s %-20s %s size=%-5d conc=%-2d round=%d: %s", r.Broker, r.Contender, r.Kind, r.Size, r.Conc, r.Round, r.Error)
	case r.Kind == "lone":
		log.Printf("%-8s %-20s lone Publish round=%d: publish p50=%.0fµs p99=%.0fµs; e2e p50=%.0fµs; %.2f µs CPU/msg", r.Broker, r.Contender, r.Round, r.PubP50, r.PubP99, r.E2EP50, r.CPUPerMsgUS)
	case r.Kind == "latency":
		log.Printf("%-8s %-20s latency at %.0f/s: e2e p50=%.0fµs p99=%.0fµs p99.9=%.0fµs; publish p50=%.0fµs p99=%.0fµs", r.Broker, r.Contender, r.Rate, r.E2EP50, r.E2EP99, r.E2EP999, r.PubP50, r.PubP99)
	default:
		log.Printf("%-8s %-20s size=%-5d conc=%-2d round=%d: %8.0f msg/s %7.2f µs CPU/msg %6.1f allocs/msg (%d goroutines after)", r.Broker, r.Contender, r.Size, r.Conc, r.Round, r.MsgsPerSec, r.CPUPerMsgUS, r.AllocsPerMsg, r.Goroutines)
	}
}
