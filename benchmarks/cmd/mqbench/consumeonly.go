package main

import (
	"context"
	"errors"
)

// consumeOnlyNote is added to each contender's note under -consume-only.
const consumeOnlyNote = "; consume-only (-consume-only): the timed messages are published first while the consumer waits before handling any of them, and the time and CPU run from its release until the last is handled"

// consumeOnly makes ct's throughput runs measure its consumer alone: its
// runs are holders (see holder) whose consumer waits at a gate before
// calling recv, so that the harness publishes the n timed messages
// first and times from the release until the last is handled. Messages
// the client prefetched while held are handled, not fetched, in the
// timed part: the shallower a client's prefetch, the more of its
// fetching the time includes.
func consumeOnly(ct contender) contender {
	if ct.Start == nil {
		return ct
	}
	start := ct.Start
	ct.Note += consumeOnlyNote
	ct.Start = func(ctx context.Context, c cell, recv func(int64)) (run, error) {
		g := newGate()
		gctx, cancel := context.WithCancel(context.Background())
		r, err := start(ctx, c, func(sent int64) {
			if g.wait(gctx) == nil {
				recv(sent)
			}
		})
		if err != nil {
			cancel()
			return nil, err
		}
		if _, ok := r.(holder); ok {
			cancel()
			_ = r.Close(ctx)
			_ = r.Delete(ctx)
			return nil, errors.New("-consume-only: the contender already holds its messages")
		}
		return &heldRun{run: r, g: g, cancel: cancel}, nil
	}
	return ct
}

// heldRun is a run whose consumer waits at g while held.
type heldRun struct {
	run
	g      *gate
	cancel context.CancelFunc
}

func (r *heldRun) Hold()    { r.g.hold() }
func (r *heldRun) Release() { r.g.release() }

func (r *heldRun) Close(ctx context.Context) error {
	r.cancel() // a consumer still waiting at the gate drops its message
	return r.run.Close(ctx)
}
