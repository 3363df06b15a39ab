package mq

import (
	"context"
	"fmt"
)

// Provisioner is implemented by brokers that can create a topic and groups
// ahead of time, so that messages published before any subscriber runs
// wait for those groups.
type Provisioner interface {
	// Provision creates topic and each group (bound to topic) if they do
	// not exist. It is idempotent.
	Provision(ctx context.Context, topic string, groups ...string) error
}

// Pinger is implemented by brokers that can check their connection, for
// health checks.
type Pinger interface {
	// Ping returns nil if the broker answers within ctx.
	Ping(ctx context.Context) error
}

// Aser is implemented by brokers that expose their native client.
type Aser interface {
	// As sets *target to a native value of target's type and reports
	// whether it could. Each driver documents the types it supports.
	As(target any) bool
}

// Unwrapper is implemented by wrappers around a Broker, Publisher or
// Subscriber (such as tracing), so the helpers below can reach the
// optional interfaces of what they wrap.
type Unwrapper interface {
	Unwrap() any
}

// find walks x's Unwrap chain (bounded, in case of a cycle) and returns the
// first value that is a T.
func find[T any](x any) (T, bool) {
	for range 32 {
		if t, ok := x.(T); ok {
			return t, true
		}
		u, ok := x.(Unwrapper)
		if !ok {
			break
		}
		x = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Provision creates topic and groups on b, or on what b wraps. It returns
// an error wrapping ErrNotSupported if no broker in the chain can
// provision.
func Provision(ctx context.Context, b any, topic string, groups ...string) error {
	p, ok := find[Provisioner](b)
	if !ok {
		return fmt.Errorf("%w: %T cannot provision topics", ErrNotSupported, b)
	}
	return p.Provision(ctx, topic, groups...)
}

// Ping checks b's connection, or that of what b wraps. It returns an error
// wrapping ErrNotSupported if nothing in the chain can.
func Ping(ctx context.Context, b any) error {
	p, ok := find[Pinger](b)
	if !ok {
		return fmt.Errorf("%w: %T has no Ping", ErrNotSupported, b)
	}
	return p.Ping(ctx)
}

// As sets *target to a native client of b or of anything b wraps, trying
// each along the Unwrap chain, and reports whether one matched.
func As(b any, target any) bool {
	for range 32 {
		if a, ok := b.(Aser); ok && a.As(target) {
			return true
		}
		u, ok := b.(Unwrapper)
		if !ok {
			return false
		}
		b = u.Unwrap()
	}
	return false
}
