package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

// failing returns a handler that fails with errs[i] on run i+1 and
// succeeds once errs runs out, and a pointer to its run count.
func failing(errs ...error) (mq.Handler, *int) {
	runs := new(int)
	return func(context.Context, *mq.Message) error {
		*runs++
		if *runs <= len(errs) {
			return errs[*runs-1]
		}
		return nil
	}, runs
}

func TestRetry(t *testing.T) {
	quick := middleware.RetryOptions{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond}
	with := func(f func(o *middleware.RetryOptions)) middleware.RetryOptions {
		o := quick
		f(&o)
		return o
	}
	errNo := errors.New("do not retry")
	tests := []struct {
		name     string
		opts     middleware.RetryOptions
		errs     []error
		wantRuns int
		wantErr  error
	}{
		{"success first time", quick, nil, 1, nil},
		{"success on third run", quick, []error{errBoom, errBoom}, 3, nil},
		{"default 3 runs then the last error", quick, []error{errBoom, errBoom, errNo, errBoom}, 3, errNo},
		{"MaxAttempts 5", with(func(o *middleware.RetryOptions) { o.MaxAttempts = 5 }), []error{errBoom, errBoom, errBoom, errBoom}, 5, nil},
		{"MaxAttempts 1 never retries", with(func(o *middleware.RetryOptions) { o.MaxAttempts = 1 }), []error{errBoom}, 1, errBoom},
		{"Permanent never retried", quick, []error{mq.Permanent(errBoom)}, 1, errBoom},
		{"Permanent later stops", quick, []error{errBoom, mq.Permanent(errNo)}, 2, errNo},
		{"ShouldRetry false", with(func(o *middleware.RetryOptions) {
			o.ShouldRetry = func(err error) bool { return !errors.Is(err, errNo) }
		}), []error{errNo}, 1, errNo},
		{"RetryAfter within MaxInterval", quick, []error{mq.RetryAfter(errBoom, time.Millisecond)}, 2, nil},
		{"RetryAfter beyond MaxInterval goes to the broker", quick, []error{mq.RetryAfter(errBoom, time.Hour)}, 1, errBoom},
		{"MaxElapsed ends retries", with(func(o *middleware.RetryOptions) {
			// Runs at 0, 100ms and 200ms; a fourth at 300ms would pass 250ms.
			o.MaxAttempts, o.Jitter, o.InitialInterval, o.MaxInterval, o.MaxElapsed = -1, -1, 100*time.Millisecond, 100*time.Millisecond, 250*time.Millisecond
		}), []error{errBoom, errBoom, errBoom, errBoom, errBoom, errBoom, errBoom, errBoom}, 3, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, runs := failing(tt.errs...)
			err := middleware.Retry(tt.opts)(h)(context.Background(), mq.NewMessage(nil))
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
			if *runs != tt.wantRuns {
				t.Errorf("got %d runs, want %d", *runs, tt.wantRuns)
			}
		})
	}
}

func TestRetryStopsAtContextEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	h := func(context.Context, *mq.Message) error {
		runs++
		cancel()
		return errBoom
	}
	start := time.Now()
	err := middleware.Retry(middleware.RetryOptions{MaxAttempts: -1, InitialInterval: time.Hour})(h)(ctx, mq.NewMessage(nil))
	if !errors.Is(err, errBoom) {
		t.Errorf("got %v, want the handler's last error %v", err, errBoom)
	}
	if runs != 1 {
		t.Errorf("got %d runs, want 1", runs)
	}
	if d := time.Since(start); d > wait {
		t.Errorf("returned after %v, want promptly once ctx ended", d)
	}
}

func TestRetryJitter(t *testing.T) {
	// Two failures with InitialInterval 20ms, Multiplier 2, Jitter 0.5:
	// the waits are within [10ms, 30ms] and [20ms, 60ms].
	h, _ := failing(errBoom, errBoom)
	start := time.Now()
	err := middleware.Retry(middleware.RetryOptions{InitialInterval: 20 * time.Millisecond})(h)(context.Background(), mq.NewMessage(nil))
	if err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("two retries took %v, want at least 30ms", d)
	}
}

func TestRetryOnBroker(t *testing.T) {
	// In-process retries do not go back to the broker: Attempt stays 1.
	b := newBroker(t)
	topic := topicFor(t)
	runs := newInbox()
	fh, _ := failing(errBoom, errBoom)
	subscribe(t, b, topic, "g", middleware.Retry(middleware.RetryOptions{InitialInterval: time.Millisecond})(runs.handler(fh)))
	publish(t, b, topic, mq.NewMessage([]byte("x")))
	got := runs.waitFor(t, 3)
	for i, m := range got {
		if m.Attempt != 1 {
			t.Errorf("run %d: got Attempt %d, want 1 (in-process retries are one delivery)", i+1, m.Attempt)
		}
	}
}
