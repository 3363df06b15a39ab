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
// makes a test hang.
const (
	sharedWait    = 10 * time.Minute
	exclusiveWait = 3 * time.Minute
)

// sharedLock is a per-process, per-broker file lock. While any test of this
// process uses the broker the process holds the file shared; a restart
// converts it to exclusive for the restart's duration.
type sharedLock struct {
	name string

	mu  sync.Mutex
	n   int
	f   *os.File
	key string
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

func (l *sharedLock) open(key string) (*os.File, error) {
	return os.OpenFile(lockPath(l.name, key), os.O_CREATE|os.O_RDWR, 0o666)
}

func (l *sharedLock) acquireShared(t testing.TB, key string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if l.f != nil {
		return
	}
	f, err := l.open(key)
	if err != nil {
		t.Logf("%s: broker lock unavailable (%v); going on without it", l.name, err)
		return
	}
	if !lockWait(f, false, sharedWait) {
		t.Logf("%s: waited %v for another package's broker restart; going on", l.name, sharedWait)
	}
	l.f, l.key = f, key
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
	f, opened := l.f, false
	if f == nil {
		var err error
		if f, err = l.open(key); err != nil {
			t.Logf("%s: broker lock unavailable (%v); restarting without it", l.name, err)
			fn()
			return
		}
		opened = true
	}
	defer func() {
		if opened {
			unlock(f)
			_ = f.Close()
			return
		}
		lockWait(f, false, sharedWait)
	}()
	if !lockWait(f, true, exclusiveWait) {
		t.Logf("%s: other packages still use the broker after %v; restarting anyway", l.name, exclusiveWait)
	}
	fn()
}
