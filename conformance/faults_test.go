package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/driver"
	"github.com/seedmq/mq/internal/hook"
)

// faultEnv selects the fault TestFaulty injects.
const faultEnv = "MQ_CONFORMANCE_FAULT"

// TestSuiteCatchesFaults shows that the suite can fail: for each fault, a
// memory broker wrapped to misbehave in that one way is run through the
// case that must catch it, in a subprocess, which must fail that case. A
// case that passes a broken driver would be a defect of the suite.
func TestSuiteCatchesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the suite in subprocesses")
	}
	for _, tc := range []struct{ fault, cases string }{
		{"drop-headers", "many-headers"},
		{"drop-headers", "round-trip"},
		{"mangle-body", "body-bytes"},
		{"lose-last", "batch-publish"},
		{"ignore-publish-ctx", "publish-ctx-done"},
		{"swallow-errors", "nack-redelivers"},
		{"attempt-stuck", "nack-redelivers"},
		{"attempt-stuck", "unacked-redelivered"},
		{"permanent-retried", "permanent-not-redelivered"},
		{"ignore-backoff", "nack-delay"},
		{"ignore-backoff", "retry-after"},
		{"extra-concurrency", "concurrency-limit"},
		{"extra-concurrency", "default-concurrency"},
		{"closed-is-nil", "use-after-close"},
		{"close-not-idempotent", "double-close"},
		{"leak", "cancel-no-leak"},
		{"hide-fan-out", "no-fan-out"},
		{"drop-delay", "delayed-delivery"},
		{"ack-is-nack-once", "acked-not-redelivered"},
		{"restart-loses", "broker-restart"},
		{"key-limit-unchecked", "key-limit"},
		{"header-limit-unchecked", "header-limits"},
		{"concurrency-clamped", "huge-concurrency"},
		{"close-waits-for-network", "network-stall-close"},
		{"reset-loses", "network-reset-no-loss"},
	} {
		t.Run(tc.fault+"/"+tc.cases, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFaulty$/^"+tc.cases+"$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), faultEnv+"="+tc.fault)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "--- FAIL: TestFaulty/"+tc.cases) {
				t.Errorf("case %s passed a broker with fault %s (exit: %v); output:\n%s", tc.cases, tc.fault, err, out)
			}
		})
	}
}

// TestRestartCaseOnMemory runs the broker-restart case, which real
// brokers need, against memory brokers that pretend to be persistent and
// whose "restart" drops every connection's unsettled messages: the case
// must pass, so its own logic (gating, resubscribing, waiting) is sound.
func TestRestartCaseOnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the suite in a subprocess")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFaulty$/^broker-restart$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), faultEnv+"=pretend-persistent")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFaulty/broker-restart") {
		t.Errorf("broker-restart on a memory broker with a simulated restart: got exit %v, want a pass; output:\n%s", err, out)
	}
}

// TestFaulty runs the suite against a memory broker with the fault named
// by MQ_CONFORMANCE_FAULT. It is a helper of TestSuiteCatchesFaults and
// expected to fail.
func TestFaulty(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		t.Skip("skipped: helper of TestSuiteCatchesFaults, run only in its subprocesses with " + faultEnv + " set")
	}
	name := fmt.Sprintf("faulty-%08x", rand.Uint32())
	var (
		mu        sync.Mutex
		opened    []*faulty
		restarted atomic.Bool
		network   = &fakeNetwork{}
	)
	conformance.Run(t, conformance.Harness{
		URL:     "mem://" + name,
		Network: network,
		Open: func(ctx context.Context) (mq.Broker, error) {
			b, err := mq.Open(ctx, "mem://"+name)
			if err != nil {
				return nil, err
			}
			if fault == "leak" {
				go func() { select {} }() // a goroutine Close never ends
			}
			f := &faulty{Broker: b, fault: fault, restarted: &restarted, network: network}
			mu.Lock()
			opened = append(opened, f)
			mu.Unlock()
			return f, nil
		},
		// A simulated restart: every connection loses what it holds
		// unsettled, as with a real broker's restart.
		Restart: func(t testing.TB) {
			mu.Lock()
			defer mu.Unlock()
			for _, f := range opened {
				if d, ok := f.Broker.(interface{ Disconnect() }); ok {
					d.Disconnect()
				}
			}
			restarted.Store(true)
		},
		Timeout: 3 * time.Second,
	})
}

// faulty wraps a memory broker to break one rule of the contract.
type faulty struct {
	mq.Broker
	fault     string
	closed    atomic.Bool
	restarted *atomic.Bool // set by the harness's Restart
	network   *fakeNetwork
	lost      atomic.Int32
}

// fakeNetwork is the Harness.Network of TestFaulty: the memory broker has
// no network, so it only records what the case asks for, and faults act
// on it.
type fakeNetwork struct {
	stalled atomic.Bool
	resets  atomic.Int32
}

func (n *fakeNetwork) Stall()  { n.stalled.Store(true) }
func (n *fakeNetwork) Resume() { n.stalled.Store(false) }
func (n *fakeNetwork) Reset()  { n.resets.Add(1) }

func (f *faulty) Unwrap() any { return f.Broker }

func (f *faulty) Capabilities() mq.Capabilities {
	c := f.Broker.Capabilities()
	switch f.fault {
	case "hide-fan-out":
		c.FanOut = false // but the broker still accepts a second group
	case "pretend-persistent", "restart-loses":
		c.Persistent = true
	case "key-limit-unchecked":
		c.MaxKeyBytes = 255 // but Publish does not check it
	case "header-limit-unchecked":
		c.MaxHeaderBytes = 1024 // but Publish does not check it
	}
	return c
}

func (f *faulty) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	switch f.fault {
	case "reset-loses":
		// After a reset, the next three confirmed messages are lost.
		if f.network.resets.Load() > 0 && f.lost.Add(1) <= 3 {
			return driver.PrepareMessages(msgs, driver.LimitsOf(f.Broker.Capabilities()))
		}
	case "restart-loses":
		if f.restarted.Load() {
			if err := driver.PrepareMessages(msgs, driver.LimitsOf(f.Capabilities())); err != nil {
				return err
			}
			return nil // accepted, then lost
		}
	case "ignore-publish-ctx":
		ctx = context.Background()
	case "lose-last":
		if len(msgs) > 1 {
			if err := driver.PrepareMessages(msgs, driver.LimitsOf(f.Capabilities())); err != nil {
				return err
			}
			msgs = msgs[:len(msgs)-1]
		}
	case "mangle-body", "drop-delay":
		cp := make([]*mq.Message, len(msgs))
		for i, m := range msgs {
			if m != nil {
				if m.ID == "" {
					m.ID = mq.NewID()
				}
				m = m.Clone()
				m.Body = []byte(strings.ToValidUTF8(string(m.Body), "?"))
				if f.fault == "drop-delay" {
					m.Delay = 0
				}
			}
			cp[i] = m
		}
		msgs = cp
	}
	return f.Broker.Publish(ctx, topic, msgs...)
}

func (f *faulty) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
	inner := h
	switch f.fault {
	case "drop-headers":
		h = func(ctx context.Context, m *mq.Message) error { m.Header = nil; return inner(ctx, m) }
	case "swallow-errors":
		h = func(ctx context.Context, m *mq.Message) error { _ = inner(ctx, m); return nil }
	case "attempt-stuck":
		h = func(ctx context.Context, m *mq.Message) error { m.Attempt = 1; return inner(ctx, m) }
	case "permanent-retried":
		h = func(ctx context.Context, m *mq.Message) error {
			if err := inner(ctx, m); err != nil {
				return errors.New(err.Error())
			}
			return nil
		}
	case "ignore-backoff":
		opts = append(opts, mq.Backoff(func(int) time.Duration { return 0 }))
		h = func(ctx context.Context, m *mq.Message) error {
			if err := inner(ctx, m); err != nil {
				return errors.New(err.Error())
			}
			return nil
		}
	case "concurrency-clamped":
		// A driver that silently lowers an out-of-range Concurrency.
		var asked hook.SubscribeOptions
		hook.ApplySubscribeOptions(opts, &asked)
		if asked.Concurrency > driver.MaxConcurrency || asked.Concurrency < 1 {
			opts = append(opts, mq.Concurrency(1))
		}
	case "extra-concurrency":
		// Ask the broker for one handler more than the case did.
		var asked hook.SubscribeOptions
		hook.ApplySubscribeOptions(opts, &asked)
		opts = append(opts, mq.Concurrency(max(asked.Concurrency, 1)+1))
	case "ack-is-nack-once":
		// The first acknowledgement of each message is lost.
		var mu sync.Mutex
		seen := map[string]bool{}
		h = func(ctx context.Context, m *mq.Message) error {
			err := inner(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && !seen[m.ID] {
				seen[m.ID] = true
				return errors.New("lost acknowledgement")
			}
			return err
		}
	}
	err := f.Broker.Subscribe(ctx, topic, h, opts...)
	if f.fault == "closed-is-nil" && errors.Is(err, mq.ErrClosed) {
		return nil
	}
	return err
}

func (f *faulty) Close(ctx context.Context) error {
	if f.closed.Swap(true) && f.fault == "close-not-idempotent" {
		return mq.ErrClosed
	}
	if f.fault == "close-waits-for-network" {
		// Flushing over a stalled network, ignoring ctx.
		for f.network.stalled.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return f.Broker.Close(ctx)
}
