package driver

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends, and then returns ctx's error; it
// returns nil when d passed. Drivers wait out their retry backoffs with it
// so that Close and canceled calls never wait for a timer.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
