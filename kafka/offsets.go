package kafka

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tracker follows one assigned partition's fetched offsets within one
// generation and computes its commit point: the offset after the longest
// prefix of fetched messages that are all acknowledged. Messages may be
// acknowledged in any order (handlers run concurrently across keys); the
// commit point never passes an unacknowledged one.
//
// It remembers how many times unacknowledged messages failed, so that the
// count is committed with the offset (as commit metadata) and a message
// redelivered after a rebalance, a restart or a crash continues its
// attempt count.
//
// It also records the highest offset whose handler has started while
// handlers run, committed with the counts, so that the partition's next
// owner counts a message that was in flight when this member crashed as
// attempted (see startedMark), and it counts running handlers, so that a
// revoked partition can wait for them before its final commit.
type tracker struct {
	mu        sync.Mutex
	window    []ackEntry    // fetched, not yet below the commit point, in fetch order
	buf       []ackEntry    // the array window starts in when it is empty, reused
	base      int64         // sequence number of window[0]
	next      int64         // commit point: every fetched offset below it is acked
	committed int64         // last commit point sent to the broker
	fails     map[int64]int // offset → failed attempts, for unacknowledged messages
	version   int           // changes whenever fails does
	sent      int           // version of the last commit
	started   int64         // highest offset whose handler started; -1 before any
	sentMark  int64         // started mark the last commit carried; -1 for none
	// Offsets below priorBelow, at or after the start, had a handler
	// started under the previous owner that may not have finished; add
	// counts one more attempt for each, once (priorDone is the highest
	// offset counted so far).
	priorBelow int64
	priorDone  int64
	running    int  // handlers running now
	revoked    bool // the partition is no longer ours
	drained    chan struct{}
	// queued counts fetched deliveries not yet settled for good (running,
	// waiting in the dispatcher, or released); a revoked partition first
	// lets them be handled, as a Java consumer finishes the records of
	// its last poll, so that no later message of the partition is
	// acknowledged while an earlier one is left to the new owner.
	queued   int
	draining bool
	emptied  chan struct{} // closed when draining and queued reaches 0
}

type ackEntry struct {
	offset int64
	done   bool
}

// newTracker starts tracking at offset start, the group's committed
// position (which needs no commit).
// fails seeds the failed-attempt counts committed by the partition's
// previous owner.
func newTracker(start int64, fails map[int64]int) *tracker {
	if fails == nil {
		fails = map[int64]int{}
	}
	return &tracker{next: start, committed: start, fails: fails, started: -1, sentMark: -1, priorDone: -1, drained: make(chan struct{}), emptied: make(chan struct{})}
}

// inheritStarted records the started mark committed by the partition's
// previous owner, plus one: every offset below below that is fetched
// again counts one more attempt. 0 is none.
func (t *tracker) inheritStarted(below int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.priorBelow = max(below, 0)
}

// fail records that the message at offset failed on attempt.
func (t *tracker) fail(offset int64, attempt int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fails[offset] = attempt
	t.version++
}

// add records a fetched offset and returns its sequence number for ack
// and how many times the message already failed.
func (t *tracker) add(offset int64) (seq int64, failed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queued++
	return t.addLocked(offset)
}

// settled records that a delivery counted by add is settled for good, or
// was never handed to the dispatcher.
func (t *tracker) settled() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settledLocked()
}

func (t *tracker) settledLocked() {
	t.queued--
	if t.draining && t.queued == 0 {
		close(t.emptied)
	}
}

func (t *tracker) addLocked(offset int64) (seq int64, failed int) {
	if len(t.window) == 0 {
		t.window = t.buf[:0]
	}
	had := cap(t.window)
	t.window = append(t.window, ackEntry{offset: offset})
	if cap(t.window) != had {
		// append moved the window to the start of a larger array: keep
		// that array for reuse.
		t.buf = t.window[:0]
	}
	failed = t.fails[offset]
	if offset < t.priorBelow && offset > t.priorDone {
		// Started under the previous owner, which committed no outcome.
		failed++
		t.fails[offset] = failed
		t.priorDone = offset
		t.version++
	}
	return t.base + int64(len(t.window)) - 1, failed
}

// ack marks the message with sequence number seq as handled and advances
// the commit point over the acknowledged prefix.
func (t *tracker) ack(seq int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ackLocked(seq)
}

// ackEnd is ack followed, if ran, by end and, if settled, by settled,
// under one lock: revoke cannot see the handler ended before its
// acknowledgement is recorded, and a delivery's final acknowledgement
// takes the tracker's lock once.
func (t *tracker) ackEnd(seq int64, ran, settled bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ackLocked(seq)
	if ran {
		t.endLocked()
	}
	if settled {
		t.settledLocked()
	}
}

func (t *tracker) ackLocked(seq int64) {
	i := seq - t.base
	if i < 0 || i >= int64(len(t.window)) {
		return
	}
	t.window[i].done = true
	if len(t.fails) > 0 {
		if _, ok := t.fails[t.window[i].offset]; ok {
			delete(t.fails, t.window[i].offset)
			t.version++
		}
	}
	n := 0
	for n < len(t.window) && t.window[n].done {
		t.next = t.window[n].offset + 1
		n++
	}
	if n > 0 {
		t.window = t.window[n:]
		t.base += int64(n)
		if len(t.window) == 0 && cap(t.buf) > maxReusedWindow {
			t.buf = nil // let a window that grew large go
		}
	}
}

// skipTo records that every offset below next that was not fetched for a
// handler (transaction markers, records of aborted transactions) needs no
// handling: the commit point may move past them.
func (t *tracker) skipTo(next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.window) == 0 {
		t.next = max(t.next, next)
		return
	}
	seq, _ := t.addLocked(next - 1)
	t.ackLocked(seq)
}

// maxReusedWindow bounds the window array a tracker keeps for reuse.
const maxReusedWindow = 4096

// commitState is what a commit sends for one partition.
type commitState struct {
	offset   int64
	metadata string
	version  int
	mark     int64
}

// toCommit returns the commit point and its metadata (the failed attempts
// of messages at or after it, and the started mark) if any of them
// changed since the last commit.
func (t *tracker) toCommit() (commitState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	mark := t.startedMark()
	if t.next <= t.committed && t.version == t.sent && mark == t.sentMark {
		return commitState{}, false
	}
	return commitState{offset: t.next, metadata: encodeAttempts(t.fails, t.next, mark), version: t.version, mark: mark}, true
}

// startedMark returns the offset a commit carries as started, or -1: the
// highest offset whose handler started, while a handler runs (with none
// running, every started handler has settled and its outcome is in the
// counts), or while offsets inherited as started are not all fetched
// again. Below the commit point it is not needed.
func (t *tracker) startedMark() int64 {
	mark := int64(-1)
	if t.running > 0 {
		mark = t.started
	}
	if t.priorDone < t.priorBelow-1 {
		mark = max(mark, t.priorBelow-1)
	}
	if mark < t.next {
		return -1
	}
	return mark
}

// committedOffset returns the last commit point sent.
func (t *tracker) committedOffset() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committed
}

// setCommitted records that c was committed.
func (t *tracker) setCommitted(c commitState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.committed = max(t.committed, c.offset)
	t.sent = c.version
	t.sentMark = c.mark
}

// attemptsPrefix starts the commit metadata the driver writes; other
// metadata is ignored.
const attemptsPrefix = "mq-attempts:"

// startedKey names the started mark among the counts of the commit
// metadata; a decoder that knows only counts skips it, as its key is no
// offset.
const startedKey = "s"

// maxAttemptEntries bounds the failed-attempt counts kept in one commit's
// metadata (Kafka's offset.metadata.max.bytes defaults to 4096).
const maxAttemptEntries = 100

// encodeAttempts writes the started mark (if not negative) and the counts
// of offsets at or after from, lowest first, as
// "mq-attempts:s=mark,offset=count,...". It is at most about 2.5 KB
// (maxAttemptEntries counts), well under Kafka's default
// offset.metadata.max.bytes of 4096.
func encodeAttempts(fails map[int64]int, from, mark int64) string {
	var offs []int64
	for o := range fails {
		if o >= from {
			offs = append(offs, o)
		}
	}
	if len(offs) == 0 && mark < 0 {
		return ""
	}
	slices.Sort(offs)
	if len(offs) > maxAttemptEntries {
		offs = offs[:maxAttemptEntries]
	}
	var b strings.Builder
	b.WriteString(attemptsPrefix)
	if mark >= 0 {
		fmt.Fprintf(&b, "%s=%d", startedKey, mark)
	}
	for i, o := range offs {
		if i > 0 || mark >= 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d=%d", o, fails[o])
	}
	return b.String()
}

// decodeAttempts reads what encodeAttempts wrote, ignoring anything else:
// the counts (nil if none) and the started mark (-1 if none).
func decodeAttempts(s string) (fails map[int64]int, mark int64) {
	mark = -1
	rest, ok := strings.CutPrefix(s, attemptsPrefix)
	if !ok || rest == "" {
		return nil, mark
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if k == startedKey {
			if m, err := strconv.ParseInt(v, 10, 64); err == nil && m >= 0 && m < math.MaxInt64 {
				mark = m
			}
			continue
		}
		o, err1 := strconv.ParseInt(k, 10, 64)
		n, err2 := strconv.Atoi(v)
		if err1 == nil && err2 == nil && o >= 0 && n > 0 {
			if fails == nil {
				fails = map[int64]int{}
			}
			fails[o] = n
		}
	}
	return fails, mark
}

// begin counts a handler about to run for the message at offset, or
// reports false if the partition was revoked (the handler must not run).
func (t *tracker) begin(offset int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.revoked {
		return false
	}
	t.running++
	if offset > t.started {
		t.started = offset
	}
	return true
}

// end counts a handler that returned.
func (t *tracker) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.endLocked()
}

func (t *tracker) endLocked() {
	t.running--
	if t.revoked && t.running == 0 {
		close(t.drained)
	}
}

// isRevoked reports whether revoke was called (the partition drains or
// is revoked): a failed message is then left to the new owner.
func (t *tracker) isRevoked() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.revoked || t.draining
}

// revoke waits, up to timeout, for the deliveries already fetched to be
// handled, then stops new handlers for the partition and waits, for what
// is left of timeout, for running ones to return. It reports whether
// everything was handled in time.
func (t *tracker) revoke(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	t.mu.Lock()
	if !t.draining {
		t.draining = true
		if t.queued == 0 {
			close(t.emptied)
		}
	}
	t.mu.Unlock()
	handled := true
	wait := time.NewTimer(timeout)
	select {
	case <-t.emptied:
		wait.Stop()
	case <-wait.C:
		handled = false
	}
	timeout = max(time.Until(deadline), 0)
	t.mu.Lock()
	if !t.revoked {
		t.revoked = true
		if t.running == 0 {
			close(t.drained)
		}
	}
	t.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.drained:
		return handled
	case <-timer.C:
		return false
	}
}
