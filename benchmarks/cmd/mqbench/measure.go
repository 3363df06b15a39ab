package main

import (
	"maps"
	"math"
	"runtime"
	"slices"
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
	}
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

// durationQuantiles returns the p50, p99 and p99.9 of ds in microseconds.
func durationQuantiles(ds []time.Duration) (p50, p99, p999 float64) {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d) / float64(time.Microsecond)
	}
	return quantile(xs, 0.5), quantile(xs, 0.99), quantile(xs, 0.999)
}
