package driver

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func TestClassify(t *testing.T) {
	cfg := SubscribeConfig{Backoff: mq.ExponentialBackoff(time.Second, time.Minute)}
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		attempt int
		err     error
		want    Outcome
		delay   time.Duration
	}{
		{"nil acks", 1, nil, Ack, 0},
		{"not handled releases", 3, ErrNotHandled, Release, 0},
		{"wrapped not handled releases", 3, fmt.Errorf("partition revoked: %w", ErrNotHandled), Release, 0},
		{"permanent rejects", 1, mq.Permanent(boom), Reject, 0},
		{"wrapped permanent rejects", 1, fmt.Errorf("h: %w", mq.Permanent(boom)), Reject, 0},
		{"error retries after backoff", 2, boom, Retry, 2 * time.Second},
		{"retry after wins over backoff", 2, mq.RetryAfter(boom, 5*time.Second), Retry, 5 * time.Second},
		{"negative retry after is now", 2, mq.RetryAfter(boom, -time.Second), Retry, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, delay := cfg.Classify(tc.attempt, tc.err)
			if got != tc.want || delay != tc.delay {
				t.Errorf("Classify(%d, %v) = %v, %v; want %v, %v", tc.attempt, tc.err, got, delay, tc.want, tc.delay)
			}
		})
	}
}
