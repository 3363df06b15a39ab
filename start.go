package mq

import (
	"context"
	"errors"
)

// Subscription is a Subscribe call running in a goroutine of its own, as
// a service runs each of its consumers. Start returns one.
type Subscription struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Subscribe has returned
	err    error         // what Subscribe returned; written before done is closed
}

// Start runs s.Subscribe(ctx, topic, h, opts...) in a new goroutine and
// returns at once. The subscription runs until ctx ends, Stop is called,
// the subscriber is closed, or Subscribe fails (bad options and a missing
// topic included); Done is closed then, and Err says why.
//
// A service starts its consumers with Start and, on shutdown, closes the
// broker: Close lets running handlers finish and every subscription
// returns ErrClosed. Stop ends one subscription on its own.
func Start(ctx context.Context, s Subscriber, topic string, h Handler, opts ...SubscribeOption) *Subscription {
	ctx, cancel := context.WithCancel(ctx)
	sub := &Subscription{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		defer cancel()
		sub.err = s.Subscribe(ctx, topic, h, opts...)
	}()
	return sub
}

// Done is closed when Subscribe has returned.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns what Subscribe returned, or nil while it is running.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Stop cancels the subscription's context and waits for Subscribe to
// return. As with any canceled Subscribe, running handlers see their
// context canceled, and messages not acknowledged are delivered again
// (to close gracefully, letting handlers finish, close the subscriber).
//
// Stop returns nil if the subscription ended because it was stopped, its
// context was canceled or its subscriber closed; otherwise it returns
// the error that ended it. It is safe to call more than once.
func (s *Subscription) Stop() error {
	s.cancel()
	<-s.done
	if errors.Is(s.err, context.Canceled) || errors.Is(s.err, ErrClosed) {
		return nil
	}
	return s.err
}
