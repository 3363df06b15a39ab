package main

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// loneRun measures a lone synchronous Publish, the call an API makes
// when it publishes one event per request: one publisher, one message of
// size bytes per call, each call made after the previous one returned,
// n calls after warm ones. It reports the quantiles of the Publish call
// (PubP50...) and of the end-to-end latency (E2EP50...), and the CPU
// per message of the timed part.
//
// The result is named, as throughputRun's is.
func loneRun(ctx context.Context, broker string, ct contender, size, n, warm, round int, limit time.Duration) (res result) {
	res = result{Kind: "lone", Broker: broker, Contender: ct.Name, Role: ct.Role, Size: size, Conc: 1, Batch: 1, Round: round, Msgs: n}
	if ct.NA != "" {
		res.Error = "n/a: " + ct.NA
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cnt := newCounter()
	var measure atomic.Bool
	e2e := make([]time.Duration, 0, n)
	var e2eMu sync.Mutex
	r, err := ct.Start(ctx, cell{Size: size, Conc: 1, Batch: 1}, func(sent int64) {
		if measure.Load() && sent != 0 {
			lat := time.Duration(time.Now().UnixNano() - sent)
			e2eMu.Lock()
			e2e = append(e2e, lat)
			e2eMu.Unlock()
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
	done := cnt.expect(int64(warm))
	if err := publishN(ctx, r, cell{Size: size, Conc: 1, Batch: 1}, warm, false); err != nil {
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
	pubs := make([]time.Duration, 0, n)
	runtime.GC()
	before := takeSample()
	for range n {
		start := time.Now()
		if err := r.Publish(ctx, body, start.UnixNano()); err != nil {
			res.Error = "publish: " + err.Error()
			return res
		}
		pubs = append(pubs, time.Since(start))
	}
	err = await(ctx, done, cnt, "lone")
	after := takeSample()
	measure.Store(false)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	wall := after.wall.Sub(before.wall).Seconds()
	res.Seconds = wall
	res.MsgsPerSec = float64(n) / wall
	res.CPUSeconds = (after.cpu - before.cpu).Seconds()
	res.CPUPerMsgUS = res.CPUSeconds / float64(n) * 1e6
	res.AllocsPerMsg = float64(after.allocs-before.allocs) / float64(n)
	steal := stealShare(before, after)
	res.Steal = &steal
	e2eMu.Lock()
	got := append([]time.Duration(nil), e2e...)
	e2eMu.Unlock()
	res.Received = len(got)
	res.E2EP50, res.E2EP99, res.E2EP999 = durationQuantiles(got)
	res.PubP50, res.PubP99, res.PubP999 = durationQuantiles(pubs)
	return res
}
