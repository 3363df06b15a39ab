package brokertest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRestartWaitsForOtherUsers(t *testing.T) {
	key := fmt.Sprintf("unit-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { _ = os.Remove(lockPath("test", key)) })
	// Two locks on the same file act like two test processes.
	user, restarter := newSharedLock("test"), newSharedLock("test")
	user.acquireShared(t, key)
	restarter.acquireShared(t, key)

	var released atomic.Bool
	done := make(chan bool)
	go func() {
		restarter.exclusive(t, key, func() { done <- released.Load() })
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("restart ran while another process used the broker")
	default:
	}
	released.Store(true)
	user.releaseShared()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("restart ran before the other user released the broker")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restart did not run after the other user released the broker")
	}
	// After the restart the restarter holds the broker shared again, so a
	// new user gets it at once.
	user.acquireShared(t, key)
	user.releaseShared()
	restarter.releaseShared()
}

func TestDockerHealthyIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := DockerHealthy(ctx) // must not panic or hang, Docker or not
	t.Logf("DockerHealthy: %v (%v)", err, time.Since(start))
	if time.Since(start) > 45*time.Second {
		t.Fatalf("docker health check took %v", time.Since(start))
	}
}

func TestWaitReady(t *testing.T) {
	var calls int
	err := WaitReady(context.Background(), "x", func(context.Context, string) error {
		calls++
		if calls < 3 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err=%v calls=%d", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := WaitReady(ctx, "x", func(context.Context, string) error { return fmt.Errorf("never") }); err == nil {
		t.Fatal("WaitReady returned nil for a broker that is never ready")
	}
}

func TestRequired(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "1": true, "true": true, "TRUE": true, "no": false} {
		t.Setenv(EnvRequire, v)
		if got := Required(); got != want {
			t.Errorf("%s=%q: Required()=%v, want %v", EnvRequire, v, got, want)
		}
	}
}

func TestPendingRestartGoesBeforeNewUsers(t *testing.T) {
	key := fmt.Sprintf("unit-prio-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		_ = os.Remove(lockPath("test", key))
		_ = os.Remove(lockPath("test", key) + ".intent")
	})
	old, restarter, newcomer := newSharedLock("test"), newSharedLock("test"), newSharedLock("test")
	old.acquireShared(t, key)

	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }

	restarted := make(chan struct{})
	go func() {
		restarter.exclusive(t, key, func() { note("restart") })
		close(restarted)
	}()
	time.Sleep(200 * time.Millisecond) // the restart is now pending
	joined := make(chan struct{})
	go func() {
		newcomer.acquireShared(t, key)
		note("newcomer")
		close(joined)
	}()
	time.Sleep(200 * time.Millisecond)
	note("old done")
	old.releaseShared()
	for _, c := range []chan struct{}{restarted, joined} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatalf("stuck; order so far %v", order)
		}
	}
	newcomer.releaseShared()
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != "[old done restart newcomer]" {
		t.Fatalf("order %v, want [old done restart newcomer]", order)
	}
}

// TestCrashChildSkipsPendingRestart: a subprocess of a test that holds
// the broker (conformance's consumer-crash) takes the broker at once
// while a restart is pending, instead of queueing behind it: the
// restarter waits for the subprocess's parent, which waits for the
// subprocess.
func TestCrashChildSkipsPendingRestart(t *testing.T) {
	key := fmt.Sprintf("unit-%d-%d", os.Getpid(), time.Now().UnixNano())
	path := lockPath("test", key)
	t.Cleanup(func() { _ = os.Remove(path); _ = os.Remove(path + ".intent") })
	intent, err := openLock(path + ".intent")
	if err != nil {
		t.Fatal(err)
	}
	defer intent.Close()
	if !lockWait(intent, true, time.Second) { // a restarter's pending intent
		t.Fatal("could not take the intent lock")
	}
	t.Setenv(crashChildEnv, "topic group")
	child := newSharedLock("test")
	start := time.Now()
	child.acquireShared(t, key)
	defer child.releaseShared()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the subprocess waited %v behind a pending restart, want at once", d)
	}
}
