package driver

import (
	"github.com/seedmq/mq"
	"github.com/seedmq/mq/internal/hook"
)

// SetNative attaches the broker's own representation of a delivery to m,
// so that the handler's m.As(&target) can reach it. Call it before the
// message is handed to the handler; raw is usually a value (not a
// pointer) of the client library's delivery type, and the driver's
// package doc lists which types As accepts.
func SetNative(m *mq.Message, raw any) {
	hook.SetMessageRaw(m, raw)
}

// LazyNative makes a native delivery on demand, for SetLazyNative.
type LazyNative interface {
	// LazyNative returns the native delivery, as SetNative would take
	// it. It may be called any number of times, from any goroutine, for
	// as long as the message is reachable.
	LazyNative() any
}

// SetLazyNative is SetNative for a driver that keeps what its native
// delivery is made of and builds it only when the handler calls m.As:
// storing a pointer to the driver's own delivery costs no allocation,
// where converting a native struct value to an interface copies it to
// the heap for every message, asked for or not.
func SetLazyNative(m *mq.Message, n LazyNative) {
	hook.SetMessageRaw(m, n)
}
