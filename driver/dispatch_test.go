package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// outcome records what Settle saw for each message.
type outcome struct {
	mu   sync.Mutex
	errs map[string][]error
}

func (o *outcome) settle(id string) SettleFunc {
	return func(_ context.Context, err error) (time.Duration, bool) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.errs == nil {
			o.errs = map[string][]error{}
		}
		o.errs[id] = append(o.errs[id], err)
		return 0, false
	}
}

func TestConcurrencyLimitIsReachedNotExceeded(t *testing.T) {
	var running, peak atomic.Int32
	gate := make(chan struct{})
	h := func(ctx context.Context, m *mq.Message) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-gate
		running.Add(-1)
		return nil
	}
	d := NewDispatcher(context.Background(), h, DispatcherConfig{Concurrency: 3, MaxPending: 10, Logger: quiet})
	var o outcome
	for i := range 10 {
		id := fmt.Sprint(i)
		if err := d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: id}, Settler: o.settle(id)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.InFlight() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := d.InFlight(); got != 3 {
		t.Fatalf("in flight = %d, want 3", got)
	}
	close(gate)
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 3 {
		t.Fatalf("peak concurrency = %d, want 3", peak.Load())
	}
}

func TestLaneKeepsOrderAndRetriesInPlace(t *testing.T) {
	var mu sync.Mutex
	var got []string
	failedOnce := false
	h := func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.ID == "k1" && !failedOnce {
			failedOnce = true
			return errors.New("fail once")
		}
		got = append(got, fmt.Sprintf("%s@%d", m.ID, m.Attempt))
		return nil
	}
	d := NewDispatcher(context.Background(), h, DispatcherConfig{Concurrency: 4, MaxPending: 8, Logger: quiet})
	for i := range 4 {
		id := fmt.Sprintf("k%d", i)
		del := &Delivery{Msg: &mq.Message{ID: id, Attempt: 1}, Lane: "k"}
		del.Settler = SettleFunc(func(_ context.Context, err error) (time.Duration, bool) {
			return time.Millisecond, err != nil
		})
		if err := d.Submit(context.Background(), del); err != nil {
			t.Fatal(err)
		}
	}
	waitSettled(t, d)
	d.Shutdown(context.Background())
	if want := "[k0@1 k1@2 k2@1 k3@1]"; fmt.Sprint(got) != want {
		t.Fatalf("handled %v, want %v", got, want)
	}
}

func TestPanicBecomesError(t *testing.T) {
	d := NewDispatcher(context.Background(), func(context.Context, *mq.Message) error { panic("boom") }, DispatcherConfig{Logger: quiet})
	var o outcome
	d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: "p"}, Settler: o.settle("p")})
	waitSettled(t, d)
	d.Shutdown(context.Background())
	errs := o.errs["p"]
	if len(errs) != 1 || errs[0] == nil || errs[0].Error() != "mq: handler panicked: boom" {
		t.Fatalf("settled with %v, want one panic error", errs)
	}
}

func TestShutdownReleasesQueuedAndDrainsRunning(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := func(ctx context.Context, m *mq.Message) error {
		if m.ID == "running" {
			close(started)
			<-release
		}
		return nil
	}
	d := NewDispatcher(context.Background(), h, DispatcherConfig{Concurrency: 1, MaxPending: 3, Logger: quiet})
	var o outcome
	for _, id := range []string{"running", "queued1", "queued2"} {
		d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: id}, Settler: o.settle(id)})
	}
	<-started
	done := make(chan error)
	go func() { done <- d.Shutdown(context.Background()) }()
	if err := d.Submit(context.Background(), &Delivery{Msg: &mq.Message{}}); !errors.Is(err, mq.ErrClosed) {
		// Submit after Shutdown began must refuse; give Shutdown a moment to begin.
		deadline := time.Now().Add(time.Second)
		for !errors.Is(err, mq.ErrClosed) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			err = d.Submit(context.Background(), &Delivery{Msg: &mq.Message{}, Settler: o.settle("late")})
		}
		if !errors.Is(err, mq.ErrClosed) {
			t.Fatalf("Submit during Shutdown = %v, want ErrClosed", err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if e := o.errs["running"]; len(e) != 1 || e[0] != nil {
		t.Errorf("running message settled %v, want one ack", e)
	}
	for _, id := range []string{"queued1", "queued2"} {
		if e := o.errs[id]; len(e) != 1 || !errors.Is(e[0], ErrNotHandled) {
			t.Errorf("%s settled %v, want ErrNotHandled", id, e)
		}
	}
}

// TestShutdownDeadlineCancelsHandlers checks that Shutdown waits for a
// running handler, given by Submit or running in Run's caller, and
// cancels it when Shutdown's context ends.
func TestShutdownDeadlineCancelsHandlers(t *testing.T) {
	for _, how := range []string{"Submit", "Run"} {
		h := func(ctx context.Context, m *mq.Message) error {
			<-ctx.Done()
			return ctx.Err()
		}
		d := NewDispatcher(context.Background(), h, DispatcherConfig{Logger: quiet})
		var o outcome
		del := &Delivery{Msg: &mq.Message{ID: "slow"}, Settler: o.settle("slow")}
		taken := make(chan error, 1)
		if how == "Submit" {
			taken <- d.Submit(context.Background(), del)
		} else {
			go func() { taken <- d.Run(context.Background(), del) }()
		}
		deadline := time.Now().Add(5 * time.Second)
		for d.InFlight() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if err := d.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: Shutdown = %v, want DeadlineExceeded", how, err)
		}
		cancel()
		if err := <-taken; err != nil {
			t.Errorf("%s = %v, want nil (it took the delivery)", how, err)
		}
		if e := o.errs["slow"]; len(e) != 1 || !errors.Is(e[0], context.Canceled) {
			t.Fatalf("%s: slow message settled %v, want its handler's context.Canceled", how, e)
		}
	}
}

func TestSubmitHonoursContextWhenFull(t *testing.T) {
	block := make(chan struct{})
	d := NewDispatcher(context.Background(), func(context.Context, *mq.Message) error { <-block; return nil }, DispatcherConfig{Logger: quiet})
	var o outcome
	d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: "a"}, Settler: o.settle("a")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := d.Submit(ctx, &Delivery{Msg: &mq.Message{ID: "b"}, Settler: o.settle("b")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit when full = %v, want DeadlineExceeded", err)
	}
	block <- struct{}{} // let "a" finish
	d.Shutdown(context.Background())
}

// waitSettled waits until every submitted delivery is settled.
func waitSettled(t *testing.T, d *Dispatcher) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for d.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still pending after 5s", d.Pending())
		}
		time.Sleep(time.Millisecond)
	}
}

// Regression: a delivery waiting to be retried in place held its worker
// for the whole delay, so with Concurrency(1) one failing key stalled
// every other key (found by the SQS driver's mw-redrive run).
func TestRetryWaitDoesNotHoldTheWorker(t *testing.T) {
	var mu sync.Mutex
	var order []string
	h := func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, fmt.Sprintf("%s@%d", m.ID, m.Attempt))
		if m.ID == "a" && m.Attempt == 1 {
			return errors.New("fail once")
		}
		return nil
	}
	d := NewDispatcher(context.Background(), h, DispatcherConfig{Concurrency: 1, MaxPending: 4, Logger: quiet})
	retryLater := SettleFunc(func(_ context.Context, err error) (time.Duration, bool) { return 300 * time.Millisecond, err != nil })
	d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: "a", Attempt: 1}, Lane: "a", Settler: retryLater})
	d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: "b", Attempt: 1}, Lane: "b", Settler: retryLater})
	waitSettled(t, d)
	d.Shutdown(context.Background())
	if want := "[a@1 b@1 a@2]"; fmt.Sprint(order) != want {
		t.Fatalf("handled %v, want %v: b must run while a waits for its retry", order, want)
	}
}

func TestShutdownReleasesDeliveriesWaitingToRetry(t *testing.T) {
	d := NewDispatcher(context.Background(), func(context.Context, *mq.Message) error { return errors.New("always") }, DispatcherConfig{Logger: quiet})
	var mu sync.Mutex
	var got []error
	d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: "w"}, Lane: "w", Settler: SettleFunc(func(_ context.Context, err error) (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, err)
		return time.Hour, true
	})})
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("handler never ran")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil without waiting out the hour", err)
	}
	if len(got) != 2 || !errors.Is(got[1], ErrNotHandled) {
		t.Fatalf("settled %v, want [handler error, ErrNotHandled]", got)
	}
}

// A delivery still queued when the dispatcher's context ends is released
// unstarted, before Shutdown is called: its handler would only see a
// canceled context.
func TestCanceledContextStartsNoHandler(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	h := func(ctx context.Context, m *mq.Message) error {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		return ctx.Err()
	}
	d := NewDispatcher(ctx, h, DispatcherConfig{Concurrency: 1, MaxPending: 2, Logger: quiet})
	var o outcome
	for _, id := range []string{"running", "queued"} {
		if err := d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: id}, Settler: o.settle(id)}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	cancel()
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for d.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := d.Pending(); n != 0 {
		t.Fatalf("%d deliveries still pending 5s after the context ended", n)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1 (the queued delivery must not start)", n)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.errs["running"]; len(e) != 1 || !errors.Is(e[0], context.Canceled) {
		t.Errorf("running delivery settled %v, want its handler's context.Canceled", e)
	}
	if e := o.errs["queued"]; len(e) != 1 || !errors.Is(e[0], ErrNotHandled) {
		t.Errorf("queued delivery settled %v, want ErrNotHandled", e)
	}
}

// Begin runs right before each handler run, given the delivery; its
// error skips the run and is what Settle gets.
func TestBeginErrorSkipsTheHandler(t *testing.T) {
	errStale := errors.New("stale")
	var calls atomic.Int32
	h := func(context.Context, *mq.Message) error { calls.Add(1); return nil }
	d := NewDispatcher(context.Background(), h, DispatcherConfig{Concurrency: 1, MaxPending: 2, Logger: quiet})
	var o outcome
	var begun atomic.Int32
	// One Begin serves both deliveries, telling them apart by Ref.
	begin := func(del *Delivery) error {
		begun.Add(1)
		if del.Ref == 1 {
			return errStale
		}
		return nil
	}
	for i, id := range []string{"fresh", "stale"} {
		del := &Delivery{Msg: &mq.Message{ID: id}, Settler: o.settle(id), Begin: begin, Ref: int64(i)}
		if err := d.Submit(context.Background(), del); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (not for the stale delivery)", n)
	}
	if n := begun.Load(); n != 2 {
		t.Errorf("Begin called %d times, want 2", n)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.errs["fresh"]; len(e) != 1 || e[0] != nil {
		t.Errorf("fresh delivery settled %v, want one ack", e)
	}
	if e := o.errs["stale"]; len(e) != 1 || !errors.Is(e[0], errStale) {
		t.Errorf("stale delivery settled %v, want Begin's error", e)
	}
}

// TestRunHandlesInTheCaller checks Run: the delivery is settled when Run
// returns, a panic becomes the handler's error, no worker starts, and a
// delivery Run refuses (a lane, a canceled context, shutdown begun) is not
// settled: the caller still owns it.
func TestRunHandlesInTheCaller(t *testing.T) {
	h := func(_ context.Context, m *mq.Message) error {
		if m.ID == "panic" {
			panic("boom")
		}
		return nil
	}
	d := NewDispatcher(context.Background(), h, DispatcherConfig{Concurrency: 2, Logger: quiet})
	var o outcome
	for _, id := range []string{"ok", "panic"} {
		if err := d.Run(context.Background(), &Delivery{Msg: &mq.Message{ID: id}, Settler: o.settle(id)}); err != nil {
			t.Fatalf("Run(%s) = %v, want nil", id, err)
		}
		o.mu.Lock()
		n := len(o.errs[id])
		o.mu.Unlock()
		if n != 1 {
			t.Fatalf("%s settled %d times when Run returned, want once", id, n)
		}
	}
	if e := o.errs["ok"][0]; e != nil {
		t.Errorf("ok settled with %v, want nil", e)
	}
	if e := o.errs["panic"][0]; e == nil || e.Error() != "mq: handler panicked: boom" {
		t.Errorf("panic settled with %v, want the panic as an error", e)
	}
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	if started {
		t.Errorf("workers started, want none for Run alone")
	}

	if err := d.Run(context.Background(), &Delivery{Msg: &mq.Message{ID: "lane"}, Lane: "k", Settler: o.settle("lane")}); err == nil {
		t.Errorf("Run with a lane = nil, want an error")
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(canceled, &Delivery{Msg: &mq.Message{ID: "canceled"}, Settler: o.settle("canceled")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a canceled context = %v, want context.Canceled", err)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background(), &Delivery{Msg: &mq.Message{ID: "late"}, Settler: o.settle("late")}); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Run after Shutdown = %v, want mq.ErrClosed", err)
	}
	for _, id := range []string{"lane", "canceled", "late"} {
		if e := o.errs[id]; len(e) != 0 {
			t.Errorf("%s was refused but settled with %v, want it left to the caller", id, e)
		}
	}
	if d.Pending() != 0 {
		t.Errorf("pending = %d after Shutdown, want 0", d.Pending())
	}
}

// TestRunRetryGoesToAWorker checks that a retry asked by Settle for a
// delivery from Run runs again, on a worker started for it.
func TestRunRetryGoesToAWorker(t *testing.T) {
	var calls atomic.Int32
	var attempts sync.Map
	h := func(_ context.Context, m *mq.Message) error {
		attempts.Store(calls.Add(1), m.Attempt)
		if calls.Load() == 1 {
			return errors.New("fail once")
		}
		return nil
	}
	d := NewDispatcher(context.Background(), h, DispatcherConfig{Logger: quiet})
	del := &Delivery{Msg: &mq.Message{ID: "r", Attempt: 1}}
	del.Settler = SettleFunc(func(_ context.Context, err error) (time.Duration, bool) { return time.Millisecond, err != nil })
	if err := d.Run(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, d)
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a, _ := attempts.Load(int32(2)); calls.Load() != 2 || a != 2 {
		t.Fatalf("handler ran %d times, second attempt %v; want 2 runs, the second with Attempt 2", calls.Load(), a)
	}
}

// TestDispatcherBoundsSizes pins issue 20: sizes derived from options
// (mq.Concurrency(math.MaxInt) times a prefetch factor) made
// NewDispatcher panic with "makechan: size out of range".
func TestDispatcherBoundsSizes(t *testing.T) {
	h := func(context.Context, *mq.Message) error { return nil }
	for _, cfg := range []DispatcherConfig{
		{Concurrency: math.MaxInt, MaxPending: math.MaxInt, Logger: quiet},
		{Concurrency: math.MaxInt, Logger: quiet},
		{Concurrency: 1, MaxPending: math.MaxInt, Logger: quiet},
		{Concurrency: math.MinInt, MaxPending: math.MinInt, Logger: quiet},
	} {
		d := NewDispatcher(context.Background(), h, cfg)
		if n := cap(d.slots); n < 1 || n > MaxPendingLimit {
			t.Errorf("NewDispatcher(%+v): %d pending slots, want 1 to %d", cfg, n, MaxPendingLimit)
		}
		if d.nworkers < 1 || d.nworkers > MaxConcurrency {
			t.Errorf("NewDispatcher(%+v): %d workers, want 1 to %d", cfg, d.nworkers, MaxConcurrency)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
	}
}

func TestHandlerReturningNotHandledIsAFailure(t *testing.T) {
	d := NewDispatcher(context.Background(), func(context.Context, *mq.Message) error { return ErrNotHandled }, DispatcherConfig{Logger: quiet})
	var got error
	done := make(chan struct{})
	err := d.Submit(context.Background(), &Delivery{Msg: &mq.Message{ID: "x"}, Settler: SettleFunc(func(_ context.Context, err error) (time.Duration, bool) {
		got = err
		close(done)
		return 0, false
	})})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got == nil || errors.Is(got, ErrNotHandled) {
		t.Errorf("Settle got %v, want a failure that is not ErrNotHandled", got)
	}
}
