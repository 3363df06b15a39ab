package kafka

import (
	"maps"
	"math"
	"strings"
	"testing"
)

// TestStartedMark pins the started mark: commits carry the highest offset
// whose handler started while a handler runs, and the partition's next
// owner counts one more attempt for every redelivered offset at or below
// it, so that a message in flight when a consumer crashed comes back
// with Attempt 2, not 1.
func TestStartedMark(t *testing.T) {
	t.Run("a commit carries it while a handler runs", func(t *testing.T) {
		tr := newTracker(10, nil)
		s10, _ := tr.add(10)
		tr.add(11)
		if _, ok := tr.toCommit(); ok {
			t.Fatal("toCommit before any handler started: got a change, want none")
		}
		tr.begin(10)
		tr.begin(11)
		c, ok := tr.toCommit()
		if !ok || c.offset != 10 || c.metadata != "mq-attempts:s=11" {
			t.Fatalf("got (%+v, %v), want offset 10 with metadata mq-attempts:s=11 (the commit point did not move, the mark did)", c, ok)
		}
		tr.setCommitted(c)
		if _, ok := tr.toCommit(); ok {
			t.Error("nothing changed since the commit, but toCommit reports a change")
		}
		tr.ackEnd(s10, true, false)
		c, ok = tr.toCommit()
		if !ok || c.offset != 11 || c.metadata != "mq-attempts:s=11" {
			t.Errorf("got (%+v, %v), want offset 11 with metadata mq-attempts:s=11", c, ok)
		}
		tr.setCommitted(c)
		tr.fail(11, 1)
		tr.end()
		// No handler runs: 11's outcome is in the counts, the mark goes.
		c, ok = tr.toCommit()
		if !ok || c.offset != 11 || c.metadata != "mq-attempts:11=1" {
			t.Errorf("got (%+v, %v), want offset 11 with metadata mq-attempts:11=1", c, ok)
		}
	})
	t.Run("the next owner counts redelivered offsets at or below it", func(t *testing.T) {
		fails, mark := decodeAttempts("mq-attempts:s=12,11=2")
		tr := newTracker(10, fails)
		tr.inheritStarted(mark + 1)
		want := map[int64]int{10: 1, 11: 3, 12: 1, 13: 0}
		for _, off := range []int64{10, 11, 12, 13} {
			if _, got := tr.add(off); got != want[off] {
				t.Errorf("attempts of offset %d before this one: got %d, want %d", off, got, want[off])
			}
		}
		// Fetched again in the same generation: counted once only.
		if _, got := tr.add(12); got != 1 {
			t.Errorf("offset 12 fetched again: got %d attempts before, want 1", got)
		}
		// The counts go on to the owner after this one.
		c, _ := tr.toCommit()
		if c.metadata != "mq-attempts:10=1,11=3,12=1" {
			t.Errorf("metadata after the inherited offsets were fetched: got %q, want mq-attempts:10=1,11=3,12=1", c.metadata)
		}
	})
	t.Run("inherited offsets not yet fetched keep the mark", func(t *testing.T) {
		tr := newTracker(10, nil)
		tr.inheritStarted(13)
		tr.add(10)
		c, ok := tr.toCommit()
		if !ok || c.metadata != "mq-attempts:s=12,10=1" {
			t.Errorf("got (%+v, %v), want metadata mq-attempts:s=12,10=1", c, ok)
		}
	})
	t.Run("a mark below the commit point is left out", func(t *testing.T) {
		tr := newTracker(0, nil)
		s0, _ := tr.add(0)
		tr.add(1)
		tr.begin(0)
		tr.ackEnd(s0, true, false)
		tr.begin(1) // 1 runs; mark 1, commit point 1
		c, _ := tr.toCommit()
		if c.metadata != "mq-attempts:s=1" {
			t.Errorf("got %q, want mq-attempts:s=1", c.metadata)
		}
	})
	t.Run("encoding", func(t *testing.T) {
		for _, tc := range []struct {
			in        string
			wantFails map[int64]int
			wantMark  int64
		}{
			{"", nil, -1},
			{"mq-attempts:", nil, -1},
			{"mq-attempts:3=1", map[int64]int{3: 1}, -1}, // written before marks existed
			{"mq-attempts:s=7", nil, 7},
			{"mq-attempts:s=7,3=1,5=2", map[int64]int{3: 1, 5: 2}, 7},
			{"mq-attempts:s=-1,3=1", map[int64]int{3: 1}, -1},
			{"mq-attempts:s=x", nil, -1},
			{"mq-attempts:s=9223372036854775807", nil, -1},
			{"other client's metadata s=5", nil, -1},
		} {
			fails, mark := decodeAttempts(tc.in)
			if !maps.Equal(fails, tc.wantFails) || mark != tc.wantMark {
				t.Errorf("decodeAttempts(%q): got %v, %d, want %v, %d", tc.in, fails, mark, tc.wantFails, tc.wantMark)
			}
		}
		fails := map[int64]int{4: 2, 9: 1, 2: 5}
		s := encodeAttempts(fails, 3, 9)
		if s != "mq-attempts:s=9,4=2,9=1" {
			t.Errorf("encodeAttempts: got %q, want mq-attempts:s=9,4=2,9=1", s)
		}
		if got, mark := decodeAttempts(s); !maps.Equal(got, map[int64]int{4: 2, 9: 1}) || mark != 9 {
			t.Errorf("round trip: got %v, %d", got, mark)
		}
		// The largest metadata stays well under Kafka's 4096 bytes.
		big := map[int64]int{}
		for i := range int64(2 * maxAttemptEntries) {
			big[math.MaxInt64-i] = math.MaxInt32
		}
		if s := encodeAttempts(big, 0, math.MaxInt64-1); len(s) > 3500 {
			t.Errorf("largest metadata: got %d bytes, want at most 3500", len(s))
		} else if !strings.HasPrefix(s, "mq-attempts:s=") {
			t.Errorf("largest metadata: got %.40q…", s)
		}
	})
	t.Run("begin allocates nothing", func(t *testing.T) {
		tr := newTracker(0, nil)
		off := int64(0)
		if n := testing.AllocsPerRun(100, func() { tr.begin(off); tr.end(); off++ }); n != 0 {
			t.Errorf("begin and end: got %v allocations, want 0", n)
		}
	})
}

// beginOf runs d's Begin as the dispatcher does.
func beginOf(d *delivery) error { return d.Begin(&d.Delivery) }

// BenchmarkTrackerDelivery is the tracker's share of one delivery's
// cost: add at fetch, begin before the handler, ackEnd after it, and a
// commit every 100 messages.
func BenchmarkTrackerDelivery(b *testing.B) {
	tr := newTracker(0, nil)
	b.ReportAllocs()
	for i := range b.N {
		off := int64(i)
		seq, _ := tr.add(off)
		tr.begin(off)
		tr.ackEnd(seq, true, false)
		tr.settled()
		if i%100 == 99 {
			if c, ok := tr.toCommit(); ok {
				tr.setCommitted(c)
			}
		}
	}
}
