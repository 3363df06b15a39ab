package driver

import (
	"sync"

	"github.com/seedmq/mq"
)

// stateReport holds a subscription's last reported state and the
// mq.WatchState function it goes to.
type stateReport struct {
	mu    sync.Mutex
	f     func(mq.SubscriptionState)
	state mq.SubscriptionState
	sent  bool // f has been called once
}

func newStateReport(f any) *stateReport {
	fn, _ := f.(func(mq.SubscriptionState))
	if fn == nil {
		return nil
	}
	return &stateReport{f: fn, state: mq.SubscriptionState{Assigned: -1}}
}

// update applies change and calls f when the state differs from the
// last one sent. f runs under r.mu, so calls come one at a time and in
// order.
func (r *stateReport) update(change func(*mq.SubscriptionState)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.state
	change(&next)
	if r.sent && next == r.state {
		return
	}
	r.state, r.sent = next, true
	r.f(next)
}

// SetConnected reports whether the subscription can receive messages
// now: call it with true once the driver consumes (after each
// reconnection too) and with false as soon as it notices the loss of its
// connection, consumer or membership. StartSubscribe's exit reports false
// when Subscribe returns. The mq.WatchState function is called when the
// state changes; without one SetConnected does nothing. It is safe for
// concurrent use and cheap enough for every receive loop round.
func (c SubscribeConfig) SetConnected(connected bool) {
	c.state.update(func(s *mq.SubscriptionState) { s.Connected = connected })
}

// SetAssigned reports, on brokers with partitions, how many partitions
// the subscription holds: n when a consumer group generation starts with
// the assignment known, 0 when the generation ends. Drivers without
// partitions never call it (the state says -1). Like SetConnected, it is
// safe for concurrent use and does nothing without mq.WatchState.
func (c SubscribeConfig) SetAssigned(n int) {
	c.state.update(func(s *mq.SubscriptionState) { s.Assigned = n })
}

// stopped sends the last report, when Subscribe returns.
func (c SubscribeConfig) stopped() {
	c.state.update(func(s *mq.SubscriptionState) { s.Connected, s.Stopped = false, true })
}
