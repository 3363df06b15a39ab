package main

import (
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sample is the process's cost counters at one moment.
type sample struct {
	wall   time.Time
	cpu    time.Duration // user + system CPU time of the whole process
	allocs uint64        // heap objects allocated so far
	bytes  uint64        // heap bytes allocated so far
	calls  map[string]int64
	steal  time.Duration // CPU time the hypervisor gave other guests, all CPUs (see readSteal)
}

// callCounter counts broker API calls by operation name (only SQS clients
// report them).
type callCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

var apiCalls = &callCounter{n: map[string]int64{}}

func (c *callCounter) add(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

func (c *callCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// callsPerMsg returns the calls made between two snapshots, per message.
func callsPerMsg(before, after map[string]int64, n int) map[string]float64 {
	var out map[string]float64
	for op, v := range after {
		if d := v - before[op]; d > 0 {
			if out == nil {
				out = map[string]float64{}
			}
			out[op] = float64(d) / float64(n)
		}
	}
	return out
}

// takeSample reads the counters. It calls runtime.ReadMemStats, which
// stops the world briefly: take samples only around a measured run.
func takeSample() sample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sample{
		wall:   time.Now(),
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		allocs: ms.Mallocs,
		bytes:  ms.TotalAlloc,
		calls:  apiCalls.snapshot(),
		steal:  readSteal(),
	}
}

// readSteal returns the machine's steal time so far: CPU time a virtual
// machine's CPUs were ready to run but the hypervisor ran something else.
// A run's CPU per message is measured by the process's own CPU time, but
// steal slows everything around it (the brokers too), so a run with much
// steal was measured under other conditions than its round's other runs.
// It is 0 where /proc/stat is missing or unreadable (not Linux).
func readSteal() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	ticks, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// userHZ is the unit of /proc/stat's times, USER_HZ: 100 on every Linux
// architecture Go supports.
const userHZ = 100

// stealShare returns the steal between two samples as a share of the
// machine's CPU capacity over that time.
func stealShare(before, after sample) float64 {
	wall := after.wall.Sub(before.wall)
	if wall <= 0 {
		return 0
	}
	return float64(after.steal-before.steal) / float64(wall) / float64(runtime.NumCPU())
}

// median returns the median of xs (NaN for none). xs is not modified.
func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile returns the q-quantile of xs by linear interpolation between
// the closest ranks (NaN for none). xs is not modified.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// spread returns the smallest and largest of xs.
func spread(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}

// medianCI returns a distribution-free confidence interval for the
// median of the population xs was drawn from: the order statistics
// x(k+1) and x(n-k), with the largest k that keeps the coverage,
// 1 - 2·P(B ≤ k) for B ~ Binomial(n, 1/2), at least minCoverage, and
// that coverage. With too few values for minCoverage it returns [min–max]
// and its (lower) coverage. Seven values give [2nd smallest, 2nd largest]
// at 87.5 %.
func medianCI(xs []float64) (lo, hi, coverage float64) {
	n := len(xs)
	if n == 0 {
		return math.NaN(), math.NaN(), 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	cov := func(k int) float64 { return 1 - 2*binomCDF(k, n) }
	k := 0
	for k+1 <= (n-1)/2 && cov(k+1) >= minCoverage {
		k++
	}
	return s[k], s[n-1-k], cov(k)
}

// minCoverage is the least coverage medianCI aims for.
const minCoverage = 0.85

// binomCDF returns P(B ≤ k) for B ~ Binomial(n, 1/2).
func binomCDF(k, n int) float64 {
	p, c := 0.0, 1.0 // c = C(n, i)
	for i := 0; i <= k; i++ {
		p += c
		c = c * float64(n-i) / float64(i+1)
	}
	return p / math.Pow(2, float64(n))
}

// durationQuantiles returns the p50, p99 and p99.9 of ds in microseconds.
func durationQuantiles(ds []time.Duration) (p50, p99, p999 float64) {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d) / float64(time.Microsecond)
	}
	return quantile(xs, 0.5), quantile(xs, 0.99), quantile(xs, 0.999)
}
