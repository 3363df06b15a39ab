// Package hook lets package driver reach what package mq keeps
// unexported: the native delivery behind Message.As, and the values of
// SubscribeOptions. Package mq sets the functions in its init.
package hook

import "time"

// SetMessageRaw stores a driver's native delivery in an *mq.Message.
var SetMessageRaw func(m any, raw any)

// LazyNative is a native delivery made only when Message.As asks for
// it: As reads the value LazyNative returns.
type LazyNative interface {
	LazyNative() any
}

// SubscribeOptions holds what a Subscribe call's options set.
type SubscribeOptions struct {
	Group       string
	Concurrency int
	StartAt     int
	Backoff     func(attempt int) time.Duration
	// State is the mq.WatchState function, a func(mq.SubscriptionState),
	// or nil.
	State any
}

// ApplySubscribeOptions applies opts, a []mq.SubscribeOption, to o.
var ApplySubscribeOptions func(opts any, o *SubscribeOptions)
