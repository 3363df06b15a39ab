package brokertest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// Traffic drives a failure test: publishers that each publish their own
// sequence of messages, one per Publish call, retrying a message whose
// Publish failed (as a service would), and bookkeeping of what the
// consumers receive. A test starts it, marks the moment it breaks
// something (Fault), stops it and calls Check, which fails the test for
// every acknowledged message never delivered, for a Publish that blocked
// longer than PublishBound, and for a lane (partition, queue) on which no
// message published after the fault arrived within ResumeBound.
type Traffic struct {
	// Publishers is the number of publishing goroutines.
	Publishers int
	// Publish publishes one message; each call gets a ctx of twice
	// PublishBound.
	Publish func(ctx context.Context, m *mq.Message) error
	// PublishBound is the longest a Publish may block.
	PublishBound time.Duration
	// ResumeBound is how long after the fault consumers may take to
	// receive, on every lane, a message published after it.
	ResumeBound time.Duration

	mu        sync.Mutex
	delivered map[string]int        // ID → deliveries
	resumed   map[int]time.Duration // lane → first post-fault delivery, since the fault
	acked     map[string]struct{}   // IDs whose Publish returned nil
	errs      map[string]int        // failed Publish calls by error text
	phases    []string              // lines for the report
	beforeOK  int64                 // acknowledged before the fault

	faultAt  atomic.Int64 // unix ns; 0 before the fault
	lastOK   atomic.Int64 // unix ns of the last successful Publish
	maxGap   atomic.Int64 // longest time without a successful Publish after the fault
	maxBlock atomic.Int64 // longest Publish
	nAcked   atomic.Int64
	nFailed  atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

// pubHeader carries a message's publish time (unix ns), so that the
// consumer side can tell messages published after the fault.
const pubHeader = "test-published-ns"

// Start starts the publishers.
func (tr *Traffic) Start() {
	tr.delivered = map[string]int{}
	tr.resumed = map[int]time.Duration{}
	tr.acked = map[string]struct{}{}
	tr.errs = map[string]int{}
	tr.stop = make(chan struct{})
	tr.lastOK.Store(time.Now().UnixNano())
	for p := range tr.Publishers {
		tr.wg.Add(1)
		go tr.publisher(p)
	}
}

func (tr *Traffic) publisher(p int) {
	defer tr.wg.Done()
	for seq := 0; seq < 10_000_000; seq++ {
		id := fmt.Sprintf("p%d-%07d", p, seq)
		for try := 0; ; try++ {
			select {
			case <-tr.stop:
				return
			default:
			}
			m := &mq.Message{ID: id, Key: fmt.Sprintf("k%d", seq%16), Body: []byte(id),
				Header: map[string]string{pubHeader: strconv.FormatInt(time.Now().UnixNano(), 10)}}
			ctx, cancel := context.WithTimeout(context.Background(), 2*tr.PublishBound)
			start := time.Now()
			err := tr.Publish(ctx, m)
			cancel()
			storeMax(&tr.maxBlock, int64(time.Since(start)))
			if err == nil {
				now := time.Now().UnixNano()
				last := tr.lastOK.Swap(now)
				if f := tr.faultAt.Load(); f != 0 {
					storeMax(&tr.maxGap, now-max(last, f))
				}
				tr.mu.Lock()
				tr.acked[id] = struct{}{}
				tr.mu.Unlock()
				tr.nAcked.Add(1)
				break
			}
			tr.nFailed.Add(1)
			tr.mu.Lock()
			tr.errs[shortErr(err)]++
			tr.mu.Unlock()
			if try >= 100 {
				break // give the message up: it is not acknowledged, so not counted as lost
			}
			select {
			case <-tr.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// shortErr keeps the end of an error's text, which says what failed, to
// count failures by kind.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 200 {
		s = s[i+2:]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// Delivered records a delivery on lane (a partition, a queue; 0 if the
// broker has one); call it from the handler.
func (tr *Traffic) Delivered(m *mq.Message, lane int) {
	pubNs, _ := strconv.ParseInt(m.Header[pubHeader], 10, 64)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.delivered[m.ID]++
	if f := tr.faultAt.Load(); f != 0 && pubNs > f {
		if _, ok := tr.resumed[lane]; !ok {
			tr.resumed[lane] = time.Since(time.Unix(0, f))
		}
	}
}

// Acked returns how many Publish calls returned nil so far.
func (tr *Traffic) Acked() int64 { return tr.nAcked.Load() }

// Fault marks the moment the test breaks something.
func (tr *Traffic) Fault() {
	now := time.Now()
	tr.beforeOK = tr.nAcked.Load()
	tr.faultAt.Store(now.UnixNano())
	tr.Phase("fault at %s", now.UTC().Format("15:04:05.000"))
}

// Phase records a line for the report Check logs.
func (tr *Traffic) Phase(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.phases = append(tr.phases, fmt.Sprintf(format, args...))
}

// Stop stops the publishers and waits for the calls in flight, bounded.
func (tr *Traffic) Stop(t testing.TB) {
	t.Helper()
	close(tr.stop)
	done := make(chan struct{})
	go func() { tr.wg.Wait(); close(done) }()
	bound := 2*tr.PublishBound + 10*time.Second
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("publishers did not stop within %v", bound)
	}
}

// Check waits (up to wait) until every acknowledged message was
// delivered, logs the report (name says what was broken) and fails t for
// lost messages, a Publish over PublishBound, and lanes among lanes that
// did not resume within ResumeBound.
func (tr *Traffic) Check(t testing.TB, name string, lanes []int, wait time.Duration) {
	t.Helper()
	var missing []string
	deadline := time.Now().Add(wait)
	for {
		missing = missing[:0]
		tr.mu.Lock()
		for id := range tr.acked {
			if tr.delivered[id] == 0 {
				missing = append(missing, id)
			}
		}
		tr.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	tr.mu.Lock()
	dups, unacked := 0, 0
	for id, n := range tr.delivered {
		dups += n - 1
		if _, ok := tr.acked[id]; !ok {
			unacked++
		}
	}
	resumed := maps.Clone(tr.resumed)
	errs := maps.Clone(tr.errs)
	phases := slices.Clone(tr.phases)
	tr.mu.Unlock()
	slices.Sort(missing)

	t.Logf("%s: %d Publish calls returned nil (%d before the fault); %d lost, %d duplicate deliveries, "+
		"%d delivered whose Publish had failed; %d failed Publish calls %v",
		name, tr.nAcked.Load(), tr.beforeOK, len(missing), dups, unacked, tr.nFailed.Load(), errs)
	t.Logf("%s: longest Publish %v (bound %v); longest time without a successful Publish after the fault %v; "+
		"first delivery of a message published after the fault, per lane: %v",
		name, time.Duration(tr.maxBlock.Load()).Round(time.Millisecond), tr.PublishBound,
		time.Duration(tr.maxGap.Load()).Round(time.Millisecond), roundAll(resumed))
	for _, p := range phases {
		t.Logf("%s: %s", name, p)
	}

	if len(missing) > 0 {
		t.Errorf("%d acknowledged messages never delivered, e.g. %v", len(missing), missing[:min(10, len(missing))])
	}
	if d := time.Duration(tr.maxBlock.Load()); d > tr.PublishBound {
		t.Errorf("a Publish blocked %v, want at most %v", d, tr.PublishBound)
	}
	for _, l := range lanes {
		d, ok := resumed[l]
		switch {
		case !ok:
			t.Errorf("lane %d: no message published after the fault was delivered", l)
		case d > tr.ResumeBound:
			t.Errorf("lane %d: consumers resumed %v after the fault, want within %v", l, d, tr.ResumeBound)
		}
	}
}

func roundAll(m map[int]time.Duration) map[int]time.Duration {
	for k, v := range m {
		m[k] = v.Round(time.Millisecond)
	}
	return m
}
