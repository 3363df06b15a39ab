package mq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Drivers wrap them with %w and a package prefix
// ("kafka: ..."), so test for them with errors.Is.
var (
	// ErrClosed is returned by every method called after Close has begun,
	// and by Subscribe when the broker is closed while it runs.
	ErrClosed = errors.New("mq: closed")

	// ErrNotSupported is returned when a driver cannot give a semantic the
	// caller asked for (for example a second group on SQS, or a start
	// position on a broker without replay). A driver never silently does
	// something else instead. See Capabilities.
	ErrNotSupported = errors.New("mq: not supported")

	// ErrMessageTooLarge is returned by Publish, before anything is sent,
	// when a message exceeds the broker's limit. The error text names the
	// size and the limit.
	ErrMessageTooLarge = errors.New("mq: message too large")

	// ErrNotFound is returned when a topic or group does not exist and the
	// driver is configured not to create it.
	ErrNotFound = errors.New("mq: not found")

	// ErrInvalid is matched by every invalid-input error: ErrInvalidTopic,
	// ErrInvalidMessage, ErrInvalidURL and ErrInvalidOption all satisfy
	// errors.Is(err, ErrInvalid).
	ErrInvalid = errors.New("mq: invalid argument")

	// ErrInvalidTopic reports an empty or malformed topic (or group) name.
	ErrInvalidTopic error = &invalidError{"mq: invalid topic"}

	// ErrInvalidMessage reports a nil message, an empty batch, or a header
	// the broker cannot carry.
	ErrInvalidMessage error = &invalidError{"mq: invalid message"}

	// ErrInvalidURL reports a URL that cannot be opened: unknown scheme,
	// unknown or malformed query parameter, missing host.
	ErrInvalidURL error = &invalidError{"mq: invalid URL"}

	// ErrInvalidOption reports a bad option value, such as a negative
	// concurrency.
	ErrInvalidOption error = &invalidError{"mq: invalid option"}
)

// invalidError is a sentinel that also matches ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// Permanent marks err as one that redelivery will not fix: the message is
// malformed, refers to something that does not exist, and so on. A handler
// returns Permanent(err) to say "do not redeliver". The dead-letter
// middleware moves such messages to the dead-letter topic at once; without
// it, a driver rejects the message to the broker's own dead-letter target
// where one is configured, and otherwise logs it at error level and drops
// it (each driver documents which). Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err or any error it wraps was made by
// Permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false // the common case, without errors.As's allocation
	}
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// RetryAfter marks err as a failure to redeliver no earlier than d from now,
// overriding the subscription's Backoff for this one attempt. Drivers
// without the NackDelay capability redeliver as soon as they can and say
// so in their documentation. RetryAfter(nil, d) returns nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, d: d}
}

// RetryDelay returns the delay set by RetryAfter anywhere in err's chain.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.d, true
	}
	return 0, false
}

type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// IsRetryable reports whether repeating the call that returned err may
// succeed. It is false for nil, for context errors, for ErrClosed,
// ErrInvalid, ErrNotSupported, ErrMessageTooLarge, ErrNotFound and
// Permanent errors, and true for errors with a Retryable() bool method
// that returns true (drivers mark theirs with driver.Retryable) or that
// report Temporary() or Timeout() true (as net.Error values do). For a
// *PublishError it is true when every failure in it is retryable.
func IsRetryable(err error) bool {
	if err == nil || IsPermanent(err) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotSupported) ||
		errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrNotFound) {
		return false
	}
	var pe *PublishError
	if errors.As(err, &pe) {
		for _, f := range pe.Failures {
			if !IsRetryable(f.Err) {
				return false
			}
		}
		return len(pe.Failures) > 0
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return true
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) {
		return tmp.Temporary()
	}
	return false
}

// PublishError reports which messages of a Publish call the broker did not
// accept. Messages not listed were accepted. Publish returns a
// *PublishError only for partial failures it can attribute to messages;
// errors that fail the whole call (invalid input, ErrClosed, context
// errors) are returned as they are.
type PublishError struct {
	// Total is the number of messages passed to Publish.
	Total int
	// Failures lists the messages not accepted, in index order.
	Failures []PublishFailure
}

// PublishFailure is one message that was not accepted.
type PublishFailure struct {
	// Index is the message's position in the Publish call's arguments.
	Index int
	// ID is the message's ID.
	ID string
	// Err is why it was not accepted.
	Err error
}

func (e *PublishError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mq: %d of %d messages not accepted", len(e.Failures), e.Total)
	for i, f := range e.Failures {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failures)-i)
			break
		}
		fmt.Fprintf(&b, "; message %d (id %q): %v", f.Index, f.ID, f.Err)
	}
	return b.String()
}

// Unwrap returns the failures' errors, so errors.Is(err, ErrMessageTooLarge)
// holds when any message failed for that reason.
func (e *PublishError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f.Err
	}
	return errs
}
