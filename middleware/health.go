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
}

// Health tracks the subscriptions whose handlers its Middleware wraps,
// for a readiness probe: when each last made progress (a handler run
// finished), how many runs are in flight, how many failed, and, through
// Check, whether the broker answers and whether a group with a backlog is
// being worked off. All methods are safe for concurrent use.
//
// Health sees what handlers do; whether a driver is connected or which
// partitions a Kafka member is assigned are not visible to it: a
// subscription that lost its connection shows as one whose backlog grows
// without progress, which is what Check reports as stalled.
type Health struct {
	o    HealthOptions
	mu   sync.Mutex
	subs map[healthKey]*SubscriptionHealth
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
}

// NewHealth returns a Health with o's defaults applied.
func NewHealth(o HealthOptions) *Health {
	if o.StallAfter <= 0 {
		o.StallAfter = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return &Health{o: o, subs: map[healthKey]*SubscriptionHealth{}}
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
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b SubscriptionHealth) int {
		return strings.Compare(a.Topic+"\x00"+a.Group, b.Topic+"\x00"+b.Group)
	})
	return out
}

// Check returns the subscriptions' state and nil when the service is
// ready to take work: the broker answers mq.Ping (when HealthOptions.Broker
// is set and can be pinged), and no subscription is stalled. A
// subscription is stalled when no handler run finished for StallAfter
// (counted from Since before the first one) while its group has a
// backlog; when the broker cannot report a backlog, while a handler run
// is in flight. The error names what is wrong.
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
