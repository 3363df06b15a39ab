package kafka

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
)

// fetchLog records the offsets a fetchAhead asked for; each answer is a
// fetchResponse whose errorCode is the offset, so a test can tell which
// fetch an answer belongs to.
type fetchLog struct {
	mu      sync.Mutex
	offsets []int64
}

func (l *fetchLog) fetch(_ context.Context, offset int64) (protocol.Message, error) {
	l.mu.Lock()
	l.offsets = append(l.offsets, offset)
	l.mu.Unlock()
	return &fetchResponse{errorCode: int16(offset)}, nil
}

func (l *fetchLog) asked() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.offsets)
}

// The fetch ahead is used when delivery ends where it began, and dropped
// (and the right offset fetched) when it ends elsewhere.
func TestFetchAheadAnswersTheOffsetAsked(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	var log fetchLog
	a := startAhead(ctx, log.fetch)
	defer a.stop(cancel)

	get := func(offset int64) {
		t.Helper()
		r, ok := a.get(ctx, offset)
		if !ok || r.err != nil {
			t.Fatalf("get(%d): ok %v, error %v", offset, ok, r.err)
		}
		if got := int64(r.res.(*fetchResponse).errorCode); got != offset {
			t.Fatalf("get(%d): got the answer for offset %d", offset, got)
		}
	}
	get(0)
	a.ask(10)
	a.ask(11) // one fetch ahead at a time: ignored
	get(10)   // the fetch ahead, used
	a.ask(20)
	get(17) // delivery ended early: the answer for 20 is dropped
	get(30) // nothing asked ahead: fetched now
	if got, want := log.asked(), []int64{0, 10, 20, 17, 30}; !slices.Equal(got, want) {
		t.Errorf("fetched offsets: got %v, want %v", got, want)
	}
}

// A fetch that never answers does not hold get or stop past ctx.
func TestFetchAheadStopsWithCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	a := startAhead(ctx, func(ctx context.Context, _ int64) (protocol.Message, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	a.ask(5)
	<-started
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, ok := a.get(ctx, 5); ok {
		t.Error("get after ctx ended: got ok, want not ok")
	}
	done := make(chan struct{})
	go func() { a.stop(cancel); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return after ctx ended")
	}
}

// fetchedEnd reads where the next fetch begins from the batch headers:
// past the last complete batch (its last offset, even if compaction
// removed the records there), not before the offset asked for, and not
// into a batch cut at the size limit.
func TestFetchedEnd(t *testing.T) {
	rec := func(off int64) protocol.Record {
		return protocol.Record{Offset: off, Value: protocol.NewBytes([]byte("v"))}
	}
	b1 := encodeBatch(t, 0, 10, rec(0), rec(1), rec(2)) // 10..12
	b2 := encodeBatch(t, 0, 13, rec(0), rec(1))         // 13..14, compacted to end at 18 below
	b2[batchLastDeltaAt+3] = 5
	data := append(append([]byte{}, b1...), b2...)
	for _, tc := range []struct {
		name string
		data []byte
		from int64
		want int64
	}{
		{"two batches", data, 10, 19},
		{"from inside the first", data, 11, 19},
		{"the last cut short", data[:len(data)-3], 10, 13},
		{"a batch before from", b1, 15, 15},
		{"nothing", nil, 7, 7},
	} {
		if got := fetchedEnd(tc.data, tc.from); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}
