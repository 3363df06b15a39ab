package driver

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func TestLifecycleRefusesCallsOnceClosing(t *testing.T) {
	var l Lifecycle
	exit, err := l.Enter()
	if err != nil {
		t.Fatalf("Enter on an open Lifecycle: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close(context.Background(), nil) }()
	<-l.Closing()
	if _, err := l.Enter(); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Enter while closing: got %v, want mq.ErrClosed", err)
	}
	if l.Go(func() {}) {
		t.Error("Go while closing: got true, want false")
	}
	if err := l.Err(); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Err while closing: got %v, want mq.ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a call was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	exit()
	if err := <-closed; err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
}

func TestLifecycleCloseIsBoundedByItsContext(t *testing.T) {
	var l Lifecycle
	exit, _ := l.Enter()
	defer exit() // a call that never returns by itself
	drain := l.DrainContext()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	finished := false
	start := time.Now()
	err := l.Close(ctx, func(context.Context) error { finished = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: got %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 50*time.Millisecond+CloseGrace+time.Second {
		t.Errorf("Close took %v, want about its ctx plus CloseGrace (%v)", took, CloseGrace)
	}
	if !finished {
		t.Error("finish did not run")
	}
	select {
	case <-drain.Done():
	default:
		t.Error("DrainContext did not end with Close's context")
	}
}

func TestLifecycleCloseIsIdempotent(t *testing.T) {
	var l Lifecycle
	calls := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := l.Close(context.Background(), func(context.Context) error { calls++; return nil }); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if calls != 1 {
		t.Errorf("finish ran %d times, want 1", calls)
	}
	if err := l.Close(context.Background(), nil); err != nil {
		t.Errorf("a later Close: got %v, want nil", err)
	}
}

func TestLifecycleGoIsWaitedFor(t *testing.T) {
	var l Lifecycle
	release := make(chan struct{})
	var done bool
	if !l.Go(func() { <-release; done = true }) {
		t.Fatal("Go on an open Lifecycle returned false")
	}
	time.AfterFunc(20*time.Millisecond, func() { close(release) })
	if err := l.Close(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Error("Close returned before the goroutine started with Go")
	}
}

// Enter is on every Publish's path: it allocates nothing.
func TestLifecycleEnterAllocations(t *testing.T) {
	var l Lifecycle
	n := testing.AllocsPerRun(100, func() {
		exit, err := l.Enter()
		if err != nil {
			t.Fatal(err)
		}
		exit()
	})
	if n != 0 {
		t.Errorf("Enter and exit: %v allocations, want 0", n)
	}
}
