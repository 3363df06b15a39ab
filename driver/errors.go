package driver

import "errors"

// Retryable marks err as a failure that may pass if the call is repeated
// (a lost connection, a broker that is restarting), so that
// mq.IsRetryable reports true for it and for errors wrapping it. It
// returns nil for a nil err.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err}
}

type retryableError struct{ err error }

func (e *retryableError) Error() string   { return e.err.Error() }
func (e *retryableError) Unwrap() error   { return e.err }
func (e *retryableError) Retryable() bool { return true }

// ErrNotHandled is passed to a Delivery's Settle when the dispatcher
// releases it without running its handler: Shutdown began, or the
// handlers' context ended, before its turn. The driver must make the
// message available for redelivery without counting an attempt. A driver
// that refuses a delivery itself (its partition was revoked, say) returns
// an error wrapping ErrNotHandled from Begin; Classify treats both alike.
var ErrNotHandled = errors.New("mq: released unhandled at shutdown")
