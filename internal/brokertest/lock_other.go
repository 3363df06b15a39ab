//go:build !unix

package brokertest

import (
	"os"
	"time"
)

// Without flock the lock is a no-op: restarts are not kept apart from other
// packages' tests.
func lockWait(f *os.File, exclusive bool, d time.Duration) bool { return true }

func unlock(f *os.File) {}
