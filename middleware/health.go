package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seedmq/mq"
)

// HealthOptions configures NewHealth.
type HealthOptions struct {
	// Broker is the broker the subscriptions read from (or a wrapper of
	// it). Check pings it and asks it for each subscription's backlog
	// (mq.Ping, mq.BacklogOf). Default nil: Check judges by the handler
	// runs alone.
	Broker any

	// StallAfter is how long a subscription may go without a handler run
	// finishing while its group has a backlog before Check calls it
	// stalled. Default 1 minute; make it longer than the slowest handler.
	StallAfter time.Duration

	// Timeout bounds each call Check makes to the broker. Default 5s.
	Timeout time.Duration

	// DisconnectedAfter is how long a subscription run with Track's
	// option may stay not connected (before its first connection, after a
	// loss, or once its Subscribe returned) before Check reports it. Default
	// 30s: longer than a driver's reconnection and a Kafka rebalance, so
	// that those do not flip readiness.
	DisconnectedAfter time.Duration
}

// Health tracks the subscriptions whose handlers its Middleware wraps,
// for a readiness probe: when each last made progress (a handler run
// finished), how many runs are in flight, how many failed, and, through
// Check, whether the broker answers and whether a group with a backlog is
// being worked off. All methods are safe for concurrent use.
//
// Health sees what handlers do. Whether a subscription is connected and
// how many partitions a Kafka member is assigned come from its driver:
// pass Track's option to Subscribe to have them in the state and in
// Check.
type Health struct {
	o        HealthOptions
	mu       sync.Mutex
	subs     map[healthKey]*SubscriptionHealth
	trackers map[healthKey][]*tracker
}

// tracker is the state one Subscribe call reported through Track.
type tracker struct {
	state mq.SubscriptionState
	since time.Time // when state.Connected last changed
}

type healthKey struct{ topic, group string }

// SubscriptionHealth is the state of one subscription (a topic and a
// group) as Health saw it.
type SubscriptionHealth struct {
	Topic string `json:"topic"`
	Group string `json:"group"`
	// Since is when Health first heard of the subscription: Watch, or
	// its first message.
	Since time.Time `json:"since"`
	// LastProgress is when a handler run last finished (zero: none yet).
	LastProgress time.Time `json:"last_progress,omitzero"`
	// InFlight is the number of handler runs in progress.
	InFlight int `json:"in_flight"`
	// Handled and Failed count finished runs, and those that returned an
	// error.
	Handled int64 `json:"handled"`
	Failed  int64 `json:"failed"`
	// LastError is the text of the last error a run returned.
	LastError string `json:"last_error,omitempty"`
	// Backlog is the group's backlog as Check read it, -1 when unknown.
	Backlog int64 `json:"backlog"`
	// Stalled is set by Check: see Check.
	Stalled bool `json:"stalled"`

	// Connected is what the driver last reported of the subscriptions
	// run with Track's option: true when every running one is connected;
	// nil when none is tracked. ConnectedSince is when it last changed.
	Connected      *bool     `json:"connected,omitempty"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// Assigned is the number of partitions the tracked subscriptions
	// hold together (Kafka), -1 when not known or the broker has none.
	Assigned int `json:"assigned"`
	// Warning, set by Check, names a condition that does not make the
	// service unready but deserves a look: a connected Kafka member
	// assigned no partition receives nothing.
	Warning string `json:"warning,omitempty"`
}

// NewHealth returns a Health with o's defaults applied.
func NewHealth(o HealthOptions) *Health {
	if o.StallAfter <= 0 {
		o.StallAfter = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.DisconnectedAfter <= 0 {
		o.DisconnectedAfter = 30 * time.Second
	}
	return &Health{o: o, subs: map[healthKey]*SubscriptionHealth{}, trackers: map[healthKey][]*tracker{}}
}

// Track returns a Subscribe option (mq.WatchState) that records the
// state the driver reports for one Subscribe call on topic and group:
// connected or not, and the partitions assigned. It also Watches the
// subscription. Pass a new one to each Subscribe call:
//
//	b.Subscribe(ctx, "orders", handle, mq.Group("billing"), health.Track("orders", "billing"))
//
// The subscription counts as not connected from Track's call until the
// driver reports a connection. When several Subscribe calls of this
// process share a topic and group, the state combines those still
// running (connected when all are, partitions summed); once all have
// returned, it is that of the last one to report.
func (h *Health) Track(topic, group string) mq.SubscribeOption {
	tr := &tracker{state: mq.SubscriptionState{Assigned: -1}, since: time.Now()}
	k := healthKey{topic, group}
	h.mu.Lock()
	h.get(topic, group)
	// Trackers of Subscribe calls that returned give way to new ones.
	live := h.trackers[k][:0]
	for _, t := range h.trackers[k] {
		if !t.state.Stopped {
			live = append(live, t)
		}
	}
	h.trackers[k] = append(live, tr)
	h.mu.Unlock()
	return mq.WatchState(func(st mq.SubscriptionState) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if st.Connected != tr.state.Connected {
			tr.since = time.Now()
		}
		tr.state = st
	})
}

// fillState sets s's Connected, ConnectedSince and Assigned from the
// trackers of its key. Callers hold h.mu.
func (h *Health) fillState(s *SubscriptionHealth) {
	s.Assigned = -1
	trs := h.trackers[healthKey{s.Topic, s.Group}]
	if len(trs) == 0 {
		return
	}
	var running []*tracker
	for _, t := range trs {
		if !t.state.Stopped {
			running = append(running, t)
		}
	}
	if len(running) == 0 {
		running = trs[len(trs)-1:]
	}
	connected := true
	for _, t := range running {
		connected = connected && t.state.Connected
	}
	s.Connected = &connected
	for _, t := range running {
		if t.state.Connected != connected {
			continue
		}
		// Not connected: since the longest loss; connected: since the
		// last to connect.
		if s.ConnectedSince.IsZero() || connected == t.since.After(s.ConnectedSince) {
			s.ConnectedSince = t.since
		}
	}
	for _, t := range running {
		if t.state.Assigned >= 0 {
			s.Assigned = max(s.Assigned, 0) + t.state.Assigned
		}
	}
}

// Watch declares a subscription Check must account for before its first
// message arrives: a group with a backlog and a subscription that never
// delivers counts as stalled StallAfter after Watch.
func (h *Health) Watch(topic, group string) {
	h.mu.Lock()
	h.get(topic, group)
	h.mu.Unlock()
}

// get returns the state of topic and group, creating it. Callers hold h.mu.
func (h *Health) get(topic, group string) *SubscriptionHealth {
	k := healthKey{topic, group}
	s := h.subs[k]
	if s == nil {
		s = &SubscriptionHealth{Topic: topic, Group: group, Since: time.Now(), Backlog: -1}
		h.subs[k] = s
	}
	return s
}

// Middleware returns handler middleware that records each run in h, by
// the delivered message's Topic and Group.
func (h *Health) Middleware() mq.Middleware {
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			h.mu.Lock()
			h.get(m.Topic, m.Group).InFlight++
			h.mu.Unlock()
			defer func() {
				// A panic passing through counts as a failed run and goes
				// on to the middleware that recovers it.
				if r := recover(); r != nil {
					h.finished(m, fmt.Errorf("panic: %v", r))
					panic(r)
				}
			}()
			err := next(ctx, m)
			h.finished(m, err)
			return err
		}
	}
}

func (h *Health) finished(m *mq.Message, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.get(m.Topic, m.Group)
	s.InFlight--
	s.Handled++
	s.LastProgress = time.Now()
	if err != nil {
		s.Failed++
		s.LastError = err.Error()
	}
}

// Snapshot returns the state of every subscription, sorted by topic and
// group, without asking the broker (Backlog and Stalled as the last Check
// left them).
func (h *Health) Snapshot() []SubscriptionHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]SubscriptionHealth, 0, len(h.subs))
	for _, s := range h.subs {
		c := *s
		h.fillState(&c)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b SubscriptionHealth) int {
		return strings.Compare(a.Topic+"\x00"+a.Group, b.Topic+"\x00"+b.Group)
	})
	return out
}

// Check returns the subscriptions' state and nil when the service is
// ready to take work: the broker answers mq.Ping (when HealthOptions.Broker
// is set and can be pinged), no tracked subscription (see Track) has been
// not connected for DisconnectedAfter or longer, and no subscription is
// stalled. A subscription is stalled when no handler run finished for
// StallAfter (counted from Since before the first one) while its group has
// a backlog; when the broker cannot report a backlog, while a handler run
// is in flight. A connected subscription assigned no partition is ready,
// with a Warning. The error names what is wrong.
func (h *Health) Check(ctx context.Context) ([]SubscriptionHealth, error) {
	var errs []error
	if h.o.Broker != nil {
		pctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
		err := mq.Ping(pctx, h.o.Broker)
		cancel()
		if err != nil && !errors.Is(err, mq.ErrNotSupported) {
			errs = append(errs, fmt.Errorf("broker: %w", err))
		}
	}
	subs := h.Snapshot()
	now := time.Now()
	for i := range subs {
		s := &subs[i]
		s.Backlog = -1
		if h.o.Broker != nil {
			bctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
			if bl, err := mq.BacklogOf(bctx, h.o.Broker, s.Topic, s.Group); err == nil {
				s.Backlog = bl.Messages
			}
			cancel()
		}
		last := s.LastProgress
		if last.IsZero() {
			last = s.Since
		}
		if s.Connected != nil && !*s.Connected && now.Sub(s.ConnectedSince) >= h.o.DisconnectedAfter {
			errs = append(errs, fmt.Errorf("topic %q group %q: not connected to the broker for %s",
				s.Topic, s.Group, now.Sub(s.ConnectedSince).Round(time.Second)))
		}
		if s.Connected != nil && *s.Connected && s.Assigned == 0 {
			s.Warning = "assigned no partition: it receives nothing until a rebalance gives it one (more members than partitions?)"
		}
		waiting := s.Backlog > 0 || s.Backlog < 0 && s.InFlight > 0
		if waiting && now.Sub(last) >= h.o.StallAfter {
			s.Stalled = true
			errs = append(errs, fmt.Errorf("topic %q group %q: stalled: no handler run finished for %s while %s",
				s.Topic, s.Group, now.Sub(last).Round(time.Second), pending(s)))
		}
	}
	h.mu.Lock()
	for _, s := range subs {
		if p := h.subs[healthKey{s.Topic, s.Group}]; p != nil {
			p.Backlog, p.Stalled = s.Backlog, s.Stalled
		}
	}
	h.mu.Unlock()
	if len(errs) > 0 {
		return subs, fmt.Errorf("middleware: not ready: %w", errors.Join(errs...))
	}
	return subs, nil
}

func pending(s *SubscriptionHealth) string {
	if s.Backlog > 0 {
		return fmt.Sprintf("%d message(s) wait", s.Backlog)
	}
	return fmt.Sprintf("%d run(s) are in flight", s.InFlight)
}

// ServeHTTP answers a readiness probe: 200 when Check returns nil, 503
// otherwise, with a JSON body {"ready", "error", "subscriptions"}.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	subs, err := h.Check(r.Context())
	body := map[string]any{"ready": err == nil, "subscriptions": subs}
	code := http.StatusOK
	if err != nil {
		body["error"] = err.Error()
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
