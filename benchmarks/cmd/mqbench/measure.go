package main

import (
	"math"
	"runtime"
	"slices"
	"syscall"
	"time"
)

// sample is the process's cost counters at one moment.
type sample struct {
	wall   time.Time
	cpu    time.Duration // user + system CPU time of the whole process
	allocs uint64        // heap objects allocated so far
	bytes  uint64        // heap bytes allocated so far
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
