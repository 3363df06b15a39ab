package brokertest

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// How long a test waits for a broker lock before it goes on without it. The
// lock only keeps restarts from surprising tests of other packages; it never
// makes a test hang past these bounds (go test's own -timeout is 20m in CI).
const (
	sharedWait    = 15 * time.Minute
	exclusiveWait = 12 * time.Minute
)

// sharedLock is a per-process, per-broker file lock. While any test of this
// process uses the broker the process holds the main file shared; a restart
// holds it exclusive for the restart's duration.
//
// A second "intent" file gives restarts priority: a restarter holds the intent
// file exclusive while it waits for the main lock, and a process that starts
// using the broker passes through the intent file shared first, so new users
// queue behind a pending restart instead of starving it. A process that
// already holds the broker does not touch the intent file, and a restarter
// lets go of its own shared hold before it waits, so two restarters in two
// processes cannot deadlock.
type sharedLock struct {
	name string

	mu sync.Mutex
	n  int
	f  *os.File
}

func newSharedLock(name string) *sharedLock { return &sharedLock{name: name} }

func lockPath(name, key string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, name+"-"+key)
	return filepath.Join(os.TempDir(), "mq-brokertest-"+clean+".lock")
}

func openLock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
}

// crashChildEnv is conformance.CrashChildEnv: it marks a subprocess that
// a test started while its process holds the broker shared. Such a
// subprocess does not queue behind a pending restart (the intent file):
// the restarter waits for its parent, which waits for it.
const crashChildEnv = "MQ_CONFORMANCE_CRASH_CHILD"

func (l *sharedLock) acquireShared(t testing.TB, key string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if l.f != nil {
		return
	}
	path := lockPath(l.name, key)
	f, err := openLock(path)
	if err != nil {
		t.Logf("%s: broker lock unavailable (%v); going on without it", l.name, err)
		return
	}
	start := time.Now()
	var intent *os.File
	if os.Getenv(crashChildEnv) == "" {
		intent, err = openLock(path + ".intent")
		if err == nil {
			lockWait(intent, false, sharedWait)
		}
	}
	got := lockWait(f, false, sharedWait-time.Since(start))
	if intent != nil {
		unlock(intent)
		_ = intent.Close()
	}
	if !got {
		t.Logf("%s: waited %v for another package's broker restart; going on", l.name, sharedWait)
	} else if d := time.Since(start); d > time.Second {
		t.Logf("%s: waited %v for another package's broker restart", l.name, d.Round(time.Millisecond))
	}
	l.f = f
}

func (l *sharedLock) releaseShared() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		l.n--
	}
	if l.n == 0 && l.f != nil {
		unlock(l.f)
		_ = l.f.Close()
		l.f = nil
	}
}

// exclusive runs fn while this process holds the broker's lock exclusively
// (or after a bounded wait for it). Tests of this process that ask for the
// broker meanwhile wait for fn to finish.
func (l *sharedLock) exclusive(t testing.TB, key string, fn func()) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	path := lockPath(l.name, key)
	f, opened := l.f, false
	if f == nil {
		var err error
		if f, err = openLock(path); err != nil {
			t.Logf("%s: broker lock unavailable (%v); restarting without it", l.name, err)
			fn()
			return
		}
		opened = true
	} else {
		unlock(f) // let go of our shared hold first: see the type's comment
	}
	start := time.Now()
	intent, err := openLock(path + ".intent")
	if err == nil {
		lockWait(intent, true, exclusiveWait)
	}
	defer func() {
		if opened {
			unlock(f)
			_ = f.Close()
		} else {
			lockWait(f, false, sharedWait)
		}
		if intent != nil {
			unlock(intent)
			_ = intent.Close()
		}
	}()
	if !lockWait(f, true, exclusiveWait-time.Since(start)) {
		t.Logf("%s: other packages still use the broker after %v; restarting anyway", l.name, exclusiveWait)
	} else if d := time.Since(start); d > time.Second {
		t.Logf("%s: waited %v for other packages' tests to finish with the broker", l.name, d.Round(time.Millisecond))
	}
	fn()
}
