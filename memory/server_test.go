package memory

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The ready queue gives messages out in sequence order however they
// arrive: in order (the ring), out of order (the heap), interleaved with
// pops, and across the ring's growth and wrap-around.
func TestReadyQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q readyQueue
	next := int64(0)
	var want []int64 // what the queue holds, sorted
	push := func(seq int64) {
		q.push(&pending{e: &entry{seq: seq}})
		i, _ := slices.BinarySearch(want, seq)
		want = slices.Insert(want, i, seq)
	}
	var popped []int64 // out-of-order sequences to push back later
	for step := range 20000 {
		switch k := r.IntN(10); {
		case k < 5: // a new publish
			next++
			push(next)
		case k < 6 && len(popped) > 0: // a redelivery
			i := r.IntN(len(popped))
			push(popped[i])
			popped = slices.Delete(popped, i, i+1)
		default:
			p := q.pop()
			if len(want) == 0 {
				if p != nil {
					t.Fatalf("step %d: popped seq %d from an empty queue", step, p.e.seq)
				}
				continue
			}
			if p == nil || p.e.seq != want[0] {
				t.Fatalf("step %d: popped %v, want seq %d", step, p, want[0])
			}
			want = want[1:]
			if r.IntN(3) == 0 {
				popped = append(popped, p.e.seq)
			}
		}
		if got := q.n + len(q.late); got != len(want) {
			t.Fatalf("step %d: queue holds %d, want %d", step, got, len(want))
		}
	}
}

// The log keeps the newest retain entries in order, across chunk
// boundaries, for every retain (0 keeps all).
func TestEntryLogRetain(t *testing.T) {
	for _, retain := range []int{0, 1, 2, logChunk - 1, logChunk, logChunk + 1, 3 * logChunk} {
		var l entryLog
		for i := range 4*logChunk + 7 {
			l.append(&entry{seq: int64(i)}, retain)
			kept := i + 1
			if retain > 0 {
				kept = min(kept, retain)
			}
			if l.n != kept {
				t.Fatalf("retain %d, after %d appends: n = %d, want %d", retain, i+1, l.n, kept)
			}
			if len(l.chunks) > kept/logChunk+2 {
				t.Fatalf("retain %d, after %d appends: %d chunks hold %d entries; dropped chunks are kept", retain, i+1, len(l.chunks), kept)
			}
		}
		var got []int64
		l.all(func(e *entry) { got = append(got, e.seq) })
		want := int64(4*logChunk + 7 - l.n)
		for j, seq := range got {
			if seq != want+int64(j) {
				t.Fatalf("retain %d: entry %d has seq %d, want %d (the newest, in order)", retain, j, seq, want+int64(j))
			}
		}
		if len(got) != l.n {
			t.Fatalf("retain %d: all visited %d entries, want %d", retain, len(got), l.n)
		}
	}
}
