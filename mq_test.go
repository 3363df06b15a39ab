package mq_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

func TestInvalidSentinelsMatchErrInvalid(t *testing.T) {
	for _, err := range []error{mq.ErrInvalidTopic, mq.ErrInvalidMessage, mq.ErrInvalidURL, mq.ErrInvalidOption} {
		wrapped := fmt.Errorf("kafka: %w: detail", err)
		if !errors.Is(wrapped, mq.ErrInvalid) {
			t.Errorf("errors.Is(%v, ErrInvalid) = false, want true", wrapped)
		}
		if !errors.Is(wrapped, err) {
			t.Errorf("errors.Is(%v, itself) = false, want true", wrapped)
		}
	}
	if errors.Is(mq.ErrInvalidTopic, mq.ErrInvalidURL) {
		t.Error("ErrInvalidTopic matches ErrInvalidURL, want distinct")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestIsRetryable(t *testing.T) {
	base := errors.New("connection reset")
	var netErr error = &net.OpError{Op: "read", Err: timeoutErr{}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"marked", driver.Retryable(base), true},
		{"marked and wrapped", fmt.Errorf("rabbitmq: %w", driver.Retryable(base)), true},
		{"net timeout", netErr, true},
		{"permanent beats retryable", mq.Permanent(driver.Retryable(base)), false},
		{"closed", driver.Retryable(mq.ErrClosed), false},
		{"canceled", driver.Retryable(context.Canceled), false},
		{"invalid", mq.ErrInvalidMessage, false},
		{"publish all retryable", &mq.PublishError{Total: 2, Failures: []mq.PublishFailure{{Err: driver.Retryable(base)}}}, true},
		{"publish mixed", &mq.PublishError{Total: 2, Failures: []mq.PublishFailure{{Err: driver.Retryable(base)}, {Index: 1, Err: mq.ErrMessageTooLarge}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mq.IsRetryable(tc.err); got != tc.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestPermanentAndRetryAfter(t *testing.T) {
	if mq.Permanent(nil) != nil || mq.RetryAfter(nil, time.Second) != nil || driver.Retryable(nil) != nil {
		t.Fatal("wrapping nil must return nil")
	}
	base := errors.New("bad order")
	err := fmt.Errorf("handler: %w", mq.Permanent(base))
	if !mq.IsPermanent(err) || !errors.Is(err, base) {
		t.Errorf("IsPermanent/Is on %v: want both true", err)
	}
	if mq.IsPermanent(base) {
		t.Error("IsPermanent(plain error) = true, want false")
	}
	d, ok := mq.RetryDelay(fmt.Errorf("x: %w", mq.RetryAfter(base, 3*time.Second)))
	if !ok || d != 3*time.Second {
		t.Errorf("RetryDelay = %v, %v; want 3s, true", d, ok)
	}
}

func TestPublishError(t *testing.T) {
	e := &mq.PublishError{Total: 10, Failures: []mq.PublishFailure{
		{Index: 2, ID: "a", Err: mq.ErrMessageTooLarge},
		{Index: 5, ID: "b", Err: errors.New("nope")},
	}}
	if !errors.Is(e, mq.ErrMessageTooLarge) {
		t.Error("errors.Is(PublishError, ErrMessageTooLarge) = false, want true")
	}
	for _, want := range []string{"2 of 10", `message 2 (id "a")`, `message 5 (id "b")`} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("Error() = %q, want it to contain %q", e.Error(), want)
		}
	}
}

func TestExponentialBackoff(t *testing.T) {
	f := mq.ExponentialBackoff(100*time.Millisecond, time.Second)
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		if got := f(attempt); got != want {
			t.Errorf("backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
}

func TestMessageCloneIsDeep(t *testing.T) {
	m := &mq.Message{Body: []byte("abc"), Header: map[string]string{"k": "v"}}
	c := m.Clone()
	c.Body[0] = 'X'
	c.Header["k"] = "changed"
	if string(m.Body) != "abc" || m.Header["k"] != "v" {
		t.Fatalf("Clone shares memory with the original: %q %v", m.Body, m.Header)
	}
	var s string
	if m.As(&s) {
		t.Error("As on a published message = true, want false")
	}
}

type fakeBroker struct{ mq.Broker }

func (fakeBroker) As(target any) bool {
	if p, ok := target.(*string); ok {
		*p = "native"
		return true
	}
	return false
}

type wrapper struct{ inner any }

func (w wrapper) Unwrap() any { return w.inner }

func TestAsFollowsUnwrap(t *testing.T) {
	var s string
	if !mq.As(wrapper{wrapper{fakeBroker{}}}, &s) || s != "native" {
		t.Fatalf("As through two wrappers = %q, want native", s)
	}
	var n int
	if mq.As(wrapper{fakeBroker{}}, &n) {
		t.Fatal("As with an unsupported target = true, want false")
	}
	if err := mq.Ping(context.Background(), wrapper{fakeBroker{}}); !errors.Is(err, mq.ErrNotSupported) {
		t.Fatalf("Ping on a broker without Pinger = %v, want ErrNotSupported", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := mq.Open(ctx, "nats://u:secret@host")
	if !errors.Is(err, mq.ErrInvalidURL) || !strings.Contains(err.Error(), "mem") || !strings.Contains(err.Error(), "forgotten import") {
		t.Errorf("unknown scheme error = %v; want ErrInvalidURL listing schemes with a hint", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the password", err)
	}
	_, err = mq.Open(ctx, "kafka://u:sec ret@host:%zz")
	if !errors.Is(err, mq.ErrInvalidURL) || strings.Contains(err.Error(), "sec ret") {
		t.Errorf("malformed URL error = %v; want ErrInvalidURL without the password", err)
	}
	if _, err := mq.Open(ctx, "no-scheme"); !errors.Is(err, mq.ErrInvalidURL) {
		t.Errorf("schemeless URL error = %v, want ErrInvalidURL", err)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("second Register of mem did not panic")
		}
	}()
	mq.Register("mem", func(context.Context, *url.URL) (mq.Broker, error) { return nil, nil })
}

func TestRequire(t *testing.T) {
	b := capsBroker{mq.Capabilities{Driver: "sqs", Persistent: true}}
	err := mq.Require(b, mq.CapPersistent, mq.CapFanOut, mq.CapReplay)
	if !errors.Is(err, mq.ErrNotSupported) || !strings.Contains(err.Error(), "FanOut, Replay") || !strings.Contains(err.Error(), "sqs") {
		t.Fatalf("Require = %v; want ErrNotSupported naming sqs, FanOut and Replay", err)
	}
	if err := mq.Require(b, mq.CapPersistent); err != nil {
		t.Fatalf("Require(Persistent) = %v, want nil", err)
	}
}

type capsBroker struct{ c mq.Capabilities }

func (capsBroker) Publish(context.Context, string, ...*mq.Message) error { return nil }
func (capsBroker) Subscribe(context.Context, string, mq.Handler, ...mq.SubscribeOption) error {
	return nil
}
func (capsBroker) Close(context.Context) error     { return nil }
func (b capsBroker) Capabilities() mq.Capabilities { return b.c }

func TestIsPermanentNilDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { mq.IsPermanent(nil) }); n != 0 {
		t.Fatalf("IsPermanent(nil) allocates %v times, want 0: it runs once per handled message", n)
	}
}
