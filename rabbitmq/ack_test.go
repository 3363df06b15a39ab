package rabbitmq

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fakeAcks records the acks an acker writes and checks each against the
// broker's rules: a single ack names an unacked tag; a multiple ack names
// an unacked tag and covers every unacked tag below it.
type fakeAcks struct {
	t        *testing.T
	mu       sync.Mutex
	unacked  map[uint64]bool // delivered, not acked or nacked at the "broker"
	mayAck   map[uint64]bool // tags whose handler succeeded
	writes   int
	multiple int
}

func (f *fakeAcks) Ack(tag uint64, multiple bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if !f.unacked[tag] {
		f.t.Errorf("ack of tag %d, which is not unacked (a channel error on a real broker)", tag)
	}
	if !multiple {
		if !f.mayAck[tag] {
			f.t.Errorf("ack of tag %d, whose handler has not succeeded", tag)
		}
		delete(f.unacked, tag)
		return nil
	}
	f.multiple++
	for t := range f.unacked {
		if t <= tag {
			if !f.mayAck[t] {
				f.t.Errorf("multiple ack up to %d covers tag %d, whose handler has not succeeded", tag, t)
			}
			delete(f.unacked, t)
		}
	}
	return nil
}

func (f *fakeAcks) IsClosed() bool { return false }

// TestAckerNeverCoversUnsettled settles deliveries concurrently and out
// of order, some by nack, and checks that every ack is one the broker
// accepts, that no ack covers a message not yet handled or nacked, and
// that every successful message is acked once drain returns.
func TestAckerNeverCoversUnsettled(t *testing.T) {
	const n = 5000
	f := &fakeAcks{t: t, unacked: map[uint64]bool{}, mayAck: map[uint64]bool{}}
	a := newAcker(f, slog.New(slog.DiscardHandler), "q", 64)
	work := make(chan uint64, 64)
	var wg sync.WaitGroup
	var nacked sync.Map
	for range 8 {
		wg.Go(func() {
			for tag := range work {
				if rand.IntN(20) == 0 {
					// A nack: written to the broker, then settled.
					f.mu.Lock()
					delete(f.unacked, tag)
					f.mu.Unlock()
					nacked.Store(tag, true)
					a.settled(tag)
					continue
				}
				f.mu.Lock()
				f.mayAck[tag] = true
				f.mu.Unlock()
				a.ack(tag)
			}
		})
	}
	for tag := uint64(1); tag <= n; tag++ {
		f.mu.Lock()
		f.unacked[tag] = true
		f.mu.Unlock()
		a.delivered(tag)
		work <- tag
	}
	close(work)
	wg.Wait()
	a.drain()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.unacked) != 0 {
		t.Errorf("got %d messages unacked after every handler settled, want 0", len(f.unacked))
	}
	t.Logf("%d messages, %d ack frames (%d multiple)", n, f.writes, f.multiple)
}

// TestAckerSlowHandler checks that a message whose handler is still
// running holds back the acks of later messages by at most holdFor, and
// not at all when the prefetch leaves no room to hold any.
func TestAckerSlowHandler(t *testing.T) {
	for _, prefetch := range []int{0, 64} {
		f := &fakeAcks{t: t, unacked: map[uint64]bool{}, mayAck: map[uint64]bool{}}
		a := newAcker(f, slog.New(slog.DiscardHandler), "q", prefetch)
		unacked := func() map[uint64]bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			c := map[uint64]bool{}
			for k, v := range f.unacked {
				c[k] = v
			}
			return c
		}
		for tag := uint64(1); tag <= 4; tag++ {
			f.unacked[tag] = true
			a.delivered(tag)
		}
		start := time.Now()
		for _, tag := range []uint64{1, 3, 4} {
			f.mu.Lock()
			f.mayAck[tag] = true
			f.mu.Unlock()
			a.ack(tag)
		}
		for u := unacked(); len(u) != 1 || !u[2]; u = unacked() {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("prefetch %d: got unacked %v after 10s, want only tag 2 (its handler is still running)", prefetch, u)
			}
			time.Sleep(100 * time.Microsecond)
		}
		if prefetch == 0 && time.Since(start) > time.Second {
			t.Errorf("prefetch 0: acks above the slow message took %v, want them written at once", time.Since(start))
		}
		f.mu.Lock()
		f.mayAck[2] = true
		f.mu.Unlock()
		a.ack(2)
		a.drain()
		if u := unacked(); len(u) != 0 {
			t.Fatalf("prefetch %d: got unacked %v after the slow handler succeeded, want none", prefetch, u)
		}
	}
}

// TestAckerDrainWritesHeld checks that drain writes acks held back for a
// multiple ack before it returns, without waiting for holdFor.
func TestAckerDrainWritesHeld(t *testing.T) {
	f := &fakeAcks{t: t, unacked: map[uint64]bool{}, mayAck: map[uint64]bool{}}
	a := newAcker(f, slog.New(slog.DiscardHandler), "q", 64)
	a.holdFor = time.Hour
	for tag := uint64(1); tag <= 3; tag++ {
		f.unacked[tag] = true
		a.delivered(tag)
	}
	f.mayAck[3] = true
	a.ack(3) // held: 1 and 2 are unsettled
	f.mu.Lock()
	if !f.unacked[3] {
		t.Errorf("tag 3 was acked at once, want it held back for a multiple ack")
	}
	f.mu.Unlock()
	a.drain()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unacked[3] {
		t.Errorf("tag 3 still unacked after drain, want it written")
	}
	if !f.unacked[1] || !f.unacked[2] {
		t.Errorf("got unacked %v, want tags 1 and 2 left alone", f.unacked)
	}
}

// TestAckerCombinesInOrder checks that an ack is held back while another
// delivery is in flight and then goes out in one multiple ack with it,
// and that an ack with nothing else in flight is written at once.
func TestAckerCombinesInOrder(t *testing.T) {
	f := &fakeAcks{t: t, unacked: map[uint64]bool{}, mayAck: map[uint64]bool{}}
	a := newAcker(f, slog.New(slog.DiscardHandler), "q", 64)
	a.holdFor = time.Hour
	for tag := uint64(1); tag <= 2; tag++ {
		f.unacked[tag] = true
		f.mayAck[tag] = true
		a.delivered(tag)
	}
	a.ack(1)
	a.ack(2)
	f.mu.Lock()
	if f.writes != 1 || f.multiple != 1 || len(f.unacked) != 0 {
		t.Errorf("got %d ack frames (%d multiple), unacked %v; want 1 multiple ack and none unacked", f.writes, f.multiple, f.unacked)
	}
	f.mu.Unlock()
	f.unacked[3] = true
	f.mayAck[3] = true
	a.delivered(3)
	a.ack(3)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writes != 2 || f.unacked[3] {
		t.Errorf("got %d ack frames, tag 3 unacked %v; want tag 3 acked at once in a second frame", f.writes, f.unacked[3])
	}
}

// TestAckerDeliveredOutOfOrder records deliveries the way receivers
// running side by side may: tag 3 before tag 2. No ack may cover tag 2
// before its handler succeeds, and once it has, later acks combine again
// (a late record must not leave the acker thinking tag 3 is unsettled).
func TestAckerDeliveredOutOfOrder(t *testing.T) {
	f := &fakeAcks{t: t, unacked: map[uint64]bool{}, mayAck: map[uint64]bool{}}
	a := newAcker(f, slog.New(slog.DiscardHandler), "q", 64)
	a.holdFor = time.Hour
	deliver := func(tags ...uint64) {
		for _, tag := range tags {
			f.mu.Lock()
			f.unacked[tag] = true
			f.mu.Unlock()
			a.delivered(tag)
		}
	}
	ack := func(tags ...uint64) {
		for _, tag := range tags {
			f.mu.Lock()
			f.mayAck[tag] = true
			f.mu.Unlock()
			a.ack(tag)
		}
	}
	f.unacked[2] = true // at the broker, tag 2 is delivered; its receiver has not recorded it
	deliver(1, 3)
	ack(1, 3)
	a.drain()
	f.mu.Lock()
	if len(f.unacked) != 1 || !f.unacked[2] {
		t.Errorf("got unacked %v after acking 1 and 3, want only tag 2", f.unacked)
	}
	f.mu.Unlock()
	deliver(2)
	ack(2)
	a.drain()
	deliver(4, 5)
	f.mu.Lock()
	before := f.writes
	f.mu.Unlock()
	ack(4, 5)
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.writes - before; got != 1 || len(f.unacked) != 0 {
		t.Errorf("acking 4 then 5 took %d frames, unacked %v; want one multiple ack and none unacked", got, f.unacked)
	}
}
