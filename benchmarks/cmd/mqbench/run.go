package main

import (
	"context"
	"fmt"
	"log"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is one JSON line of the results file.
type result struct {
	Kind      string `json:"kind"` // "throughput" or "latency"
	Broker    string `json:"broker"`
	Contender string `json:"contender"`
	Role      string `json:"role,omitempty"`
	Size      int    `json:"size"`
	Conc      int    `json:"conc"`
	Batch     int    `json:"batch"`
	Round     int    `json:"round"`
	Error     string `json:"error,omitempty"`

	// Throughput runs.
	Msgs          int     `json:"msgs,omitempty"`
	Seconds       float64 `json:"seconds,omitempty"`
	MsgsPerSec    float64 `json:"msgs_per_s,omitempty"`
	CPUSeconds    float64 `json:"cpu_s,omitempty"`
	CPUPerMsgUS   float64 `json:"cpu_us_per_msg,omitempty"`
	AllocsPerMsg  float64 `json:"allocs_per_msg,omitempty"`
	BytesPerMsg   float64 `json:"bytes_per_msg,omitempty"`
	PublishPerSec float64 `json:"publish_msgs_per_s,omitempty"`
	// APICallsPerMsg counts broker API calls per message by operation
	// (SQS only, where each call is an HTTP request).
	APICallsPerMsg map[string]float64 `json:"api_calls_per_msg,omitempty"`
	// Steal is the hypervisor's steal time over the timed part (a
	// latency run's: from the first send to the last arrival), as a
	// share of the machine's CPU capacity (see readSteal).
	Steal *float64 `json:"steal,omitempty"` // nil: not recorded (results before it was)

	// Latency runs: microseconds.
	Rate       float64 `json:"rate,omitempty"`
	E2EP50     float64 `json:"e2e_p50_us,omitempty"`
	E2EP99     float64 `json:"e2e_p99_us,omitempty"`
	E2EP999    float64 `json:"e2e_p999_us,omitempty"`
	PubP50     float64 `json:"pub_p50_us,omitempty"`
	PubP99     float64 `json:"pub_p99_us,omitempty"`
	PubP999    float64 `json:"pub_p999_us,omitempty"`
	Received   int     `json:"received,omitempty"`
	Late       int     `json:"late,omitempty"` // sends that started more than 1ms after their slot
	NotArrived int     `json:"not_arrived,omitempty"`

	// Goroutines is runtime.NumGoroutine after the run was closed: a
	// number that grows from run to run means a contender leaks.
	Goroutines int `json:"goroutines_after"`
}

// counter counts consumed messages and signals when a target is reached.
type counter struct {
	n      atomic.Int64
	target atomic.Int64
	mu     sync.Mutex
	reach  chan struct{}
}

func newCounter() *counter { return &counter{reach: make(chan struct{})} }

// expect resets the count and returns a channel closed once target
// messages have been counted.
func (c *counter) expect(target int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reach = make(chan struct{})
	c.n.Store(0)
	c.target.Store(target)
	return c.reach
}

func (c *counter) add() {
	if c.n.Add(1) == c.target.Load() {
		c.mu.Lock()
		close(c.reach)
		c.mu.Unlock()
	}
}

// bodies returns batch bodies of size bytes each, filled with a pattern.
func bodies(size, batch int) [][]byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	out := make([][]byte, batch)
	for i := range out {
		out[i] = b
	}
	return out
}

// publishN publishes n messages over c.Conc goroutines, c.Batch messages
// per call (the last call of a goroutine may be smaller).
func publishN(ctx context.Context, r run, c cell, n int, sent bool) error {
	full := bodies(c.Size, c.Batch)
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range c.Conc {
		wg.Go(func() {
			for {
				end := next.Add(int64(c.Batch))
				start := end - int64(c.Batch)
				if start >= int64(n) {
					return
				}
				k := int(min(end, int64(n)) - start)
				var at int64
				if sent {
					at = time.Now().UnixNano()
				}
				if err := r.Publish(ctx, full[:k], at); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// await waits for done, bounded by ctx, and says how far the count got.
func await(ctx context.Context, done <-chan struct{}, cnt *counter, what string) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: consumed %d of %d messages before %w", what, cnt.n.Load(), cnt.target.Load(), ctx.Err())
	}
}

// deleteRun deletes what r created on its broker, after r's Close (so
// that no consumer of the run still polls the topic) and outside the
// measured time. A failure is logged, not put in res: the run is
// measured already, and what is left behind costs the broker space, not
// the results.
func deleteRun(r run, res result) {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	if err := r.Delete(ctx); err != nil {
		log.Printf("%s %s: delete what the run created: %v", res.Broker, res.Contender, err)
	}
}

// throughputRun measures one contender in one cell on a fresh topic:
// warm-up messages first (published, consumed and discarded), then n
// messages timed from the first publish until the last is consumed.
//
// The result is named so that the deferred Close can still record its
// error in it.
func throughputRun(ctx context.Context, broker string, ct contender, c cell, n, warm, round int, limit time.Duration) (res result) {
	res = result{Kind: "throughput", Broker: broker, Contender: ct.Name, Role: ct.Role, Size: c.Size, Conc: c.Conc, Batch: c.Batch, Round: round, Msgs: n}
	if ct.NA != "" {
		res.Error = "n/a: " + ct.NA
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cnt := newCounter()
	r, err := ct.Start(ctx, c, func(int64) { cnt.add() })
	if err != nil {
		res.Error = "start: " + err.Error()
		return res
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), closeTimeout)
		defer ccancel()
		if err := r.Close(cctx); err != nil && res.Error == "" {
			res.Error = "close: " + err.Error()
		}
		deleteRun(r, res)
	}()

	done := cnt.expect(int64(warm))
	if err := publishN(ctx, r, c, warm, false); err != nil {
		res.Error = "warm-up publish: " + err.Error()
		return res
	}
	if err := await(ctx, done, cnt, "warm-up"); err != nil {
		res.Error = err.Error()
		return res
	}

	done = cnt.expect(int64(n))
	h, held := r.(holder)
	if held {
		// Drain: the n messages wait, published but held; the time
		// runs from their release until the last is consumed.
		h.Hold()
		if err := publishN(ctx, r, c, n, false); err != nil {
			h.Release()
			res.Error = "publish held: " + err.Error()
			return res
		}
	}
	runtime.GC()
	before := takeSample()
	if held {
		h.Release()
	} else {
		err = publishN(ctx, r, c, n, false)
	}
	published := time.Now()
	if err == nil {
		err = await(ctx, done, cnt, "run")
	}
	after := takeSample()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	wall := after.wall.Sub(before.wall).Seconds()
	res.Seconds = wall
	res.MsgsPerSec = float64(n) / wall
	if !held {
		res.PublishPerSec = float64(n) / published.Sub(before.wall).Seconds()
	}
	res.CPUSeconds = (after.cpu - before.cpu).Seconds()
	res.CPUPerMsgUS = res.CPUSeconds / float64(n) * 1e6
	res.AllocsPerMsg = float64(after.allocs-before.allocs) / float64(n)
	res.BytesPerMsg = float64(after.bytes-before.bytes) / float64(n)
	res.APICallsPerMsg = callsPerMsg(before.calls, after.calls, n)
	steal := stealShare(before, after)
	res.Steal = &steal
	return res
}

// latencyRun publishes open-loop at rate messages per second for d: a
// scheduler hands each message its slot time, and a pool of publishers
// sends it at that time (one message per call), stamping the slot time
// in sentHeader. End-to-end latency is consume time minus slot time, so
// a publisher that falls behind is charged for it (no coordinated
// omission); publish time is how long the Publish call took.
//
// The result is named, as throughputRun's is.
func latencyRun(ctx context.Context, broker string, ct contender, size int, rate float64, d time.Duration, warm int, limit time.Duration) (res result) {
	const pool = 64
	res = result{Kind: "latency", Broker: broker, Contender: ct.Name, Role: ct.Role, Size: size, Conc: pool, Batch: 1, Rate: rate}
	if ct.NA != "" {
		res.Error = "n/a: " + ct.NA
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	n := int(rate * d.Seconds())
	cnt := newCounter()
	var (
		mu      sync.Mutex
		e2e     = make([]time.Duration, 0, n)
		measure atomic.Bool
	)
	r, err := ct.Start(ctx, cell{Size: size, Conc: 16, Batch: 1}, func(sent int64) {
		if measure.Load() && sent != 0 {
			lat := time.Duration(time.Now().UnixNano() - sent)
			mu.Lock()
			e2e = append(e2e, lat)
			mu.Unlock()
		}
		cnt.add()
	})
	if err != nil {
		res.Error = "start: " + err.Error()
		return res
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), closeTimeout)
		defer ccancel()
		if err := r.Close(cctx); err != nil && res.Error == "" {
			res.Error = "close: " + err.Error()
		}
		deleteRun(r, res)
	}()
	c := cell{Size: size, Conc: 4, Batch: 1}
	done := cnt.expect(int64(warm))
	if err := publishN(ctx, r, c, warm, false); err != nil {
		res.Error = "warm-up publish: " + err.Error()
		return res
	}
	if err := await(ctx, done, cnt, "warm-up"); err != nil {
		res.Error = err.Error()
		return res
	}

	done = cnt.expect(int64(n))
	measure.Store(true)
	body := bodies(size, 1)
	slots := make(chan int64, pool)
	pubs := make([]time.Duration, n)
	var late atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	var idx atomic.Int64
	for range pool {
		wg.Go(func() {
			for slot := range slots {
				start := time.Now()
				if start.UnixNano()-slot > int64(time.Millisecond) {
					late.Add(1)
				}
				err := r.Publish(ctx, body, slot)
				pubs[idx.Add(1)-1] = time.Since(start)
				if err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	stealFrom := sample{wall: time.Now(), steal: readSteal()}
	t0 := time.Now()
	for i := range n {
		at := t0.Add(time.Duration(i) * interval)
		// Pacing an open-loop schedule (not awaiting a condition): slots
		// are absolute, so a late wake-up is made up by the next slots.
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case slots <- at.UnixNano():
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(slots)
	wg.Wait()
	if first != nil {
		res.Error = "publish: " + first.Error()
		return res
	}
	err = await(ctx, done, cnt, "latency")
	measure.Store(false)
	steal := stealShare(stealFrom, sample{wall: time.Now(), steal: readSteal()})
	res.Steal = &steal
	mu.Lock()
	got := slices.Clone(e2e)
	mu.Unlock()
	res.Received = len(got)
	res.NotArrived = n - len(got)
	res.Late = int(late.Load())
	res.E2EP50, res.E2EP99, res.E2EP999 = durationQuantiles(got)
	res.PubP50, res.PubP99, res.PubP999 = durationQuantiles(pubs[:idx.Load()])
	if err != nil {
		res.Error = err.Error()
	}
	return res
}
