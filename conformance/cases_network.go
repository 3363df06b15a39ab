package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// networkCases inject faults through Harness.Network: a stalled network
// must not hold Close beyond its ctx, and a stall or a reset mid-stream
// must lose nothing that Publish confirmed.
var networkCases = []testCase{
	{name: "network-stall-close", run: networkStallClose},
	{name: "network-stall-no-loss", run: networkStallNoLoss},
	{name: "network-reset-no-loss", run: networkResetNoLoss},
}

// Bounds of the network cases.
const (
	// StallFor is how long network-stall-no-loss stalls the network:
	// longer than the usual heartbeat and session timeouts, so drivers
	// must notice the stall and recover from it.
	StallFor = 20 * time.Second
	// CloseSlack is what the network cases allow beyond a call's ctx
	// (plus driver.CloseGrace for Close) for the call to return:
	// scheduling and closing sockets, never a network round trip.
	CloseSlack = time.Second
	// networkCloseCtx bounds Close in network-stall-close.
	networkCloseCtx = 2 * time.Second
	// networkPublishCtx bounds each Publish of the streaming cases.
	networkPublishCtx = 5 * time.Second
)

// needNetwork skips the case without Harness.Network and makes sure the
// network flows again when the case ends.
func needNetwork(t *testing.T, e *env) Network {
	t.Helper()
	n := e.h.Network
	if n == nil {
		t.Skip("skipped: Harness.Network is nil")
	}
	n.Resume()
	t.Cleanup(n.Resume)
	return n
}

// networkStallClose: with the network stalled while a subscription runs
// and a Publish is in flight, Close(ctx) returns within ctx plus
// driver.CloseGrace plus CloseSlack, and Subscribe and Publish return
// by then too.
func networkStallClose(t *testing.T, e *env) {
	n := needNetwork(t, e)
	b := e.open(t)
	e.provision(t, b, e.topic, e.group)
	c := newCollector()
	s := e.sub(t, b, c.handler(0, nil))
	m := &mq.Message{Body: []byte("before the stall")}
	e.publish(t, b, e.topic, m)
	e.awaitAcked(t, c, "a message before the stall", []string{m.ID})

	n.Stall()
	defer n.Resume() // before the cleanups close the connections
	published := make(chan error, 1)
	go func() {
		published <- e.tryPublish(b, e.topic, &mq.Message{Body: []byte("during the stall")})
	}()
	time.Sleep(200 * time.Millisecond) // let the Publish reach the stalled socket
	s.expectEnd()
	bound := networkCloseCtx + driver.CloseGrace + CloseSlack
	ctx, cancel := context.WithTimeout(context.Background(), networkCloseCtx)
	defer cancel()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- b.Close(ctx) }()
	select {
	case err := <-closed:
		took := time.Since(start)
		t.Logf("network stalled: Close(ctx of %v) returned %v after %v", networkCloseCtx, err, took.Round(time.Millisecond))
		if took > bound {
			t.Errorf("Close under a stalled network took %v, want at most its ctx %v + driver.CloseGrace %v + %v", took, networkCloseCtx, driver.CloseGrace, CloseSlack)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close under a stalled network: got %v, want nil or context.DeadlineExceeded", err)
		}
	case <-time.After(e.timeout):
		logStacks(t)
		t.Fatalf("Close under a stalled network had not returned after %v (want at most %v)", e.timeout, bound)
	}
	for what, ch := range map[string]<-chan error{"Publish": published} {
		select {
		case err := <-ch:
			t.Logf("%s in flight during the stall returned %v", what, err)
		case <-time.After(CloseSlack):
			t.Errorf("%s in flight during the stall had not returned %v after Close", what, CloseSlack)
		}
	}
	select {
	case <-s.done:
		if !errors.Is(s.err, mq.ErrClosed) {
			t.Errorf("Subscribe when Close ended it under a stalled network: got %v, want ErrClosed", s.err)
		}
	case <-time.After(CloseSlack):
		t.Errorf("Subscribe had not returned %v after Close under a stalled network", CloseSlack)
	}
}

// networkStallNoLoss: messages are published one by one while the network
// stalls for StallFor and then resumes; every Publish returns within its
// ctx (plus CloseSlack), a Subscribe canceled during the stall returns
// within driver.CloseGrace plus CloseSlack, and every message whose Publish returned nil
// is delivered. Duplicates and the recovery time are logged.
func networkStallNoLoss(t *testing.T, e *env) {
	n := needNetwork(t, e)
	runNetworkFault(t, e, "stall", func(t *testing.T, s *subscription) {
		stalled := time.Now()
		n.Stall()
		defer n.Resume()
		t.Logf("network stalled for %v", StallFor)
		time.Sleep(StallFor / 2)
		start := time.Now()
		s.expectEnd()
		s.cancel()
		bound := driver.CloseGrace + CloseSlack
		select {
		case <-s.done:
		case <-time.After(bound):
			logStacks(t)
			select {
			case <-s.done:
			case <-time.After(time.Until(stalled.Add(StallFor))):
			}
		}
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case !s.ended():
			t.Errorf("Subscribe canceled during the stall had not returned when the stall ended, %v later; want at most %v (driver.CloseGrace + CloseSlack)", took, bound)
		case took > bound:
			t.Errorf("Subscribe canceled during the stall returned %v after %v, want at most %v (driver.CloseGrace + CloseSlack)", s.err, took, bound)
		default:
			t.Logf("Subscribe canceled during the stall returned %v after %v", s.err, took)
		}
		time.Sleep(time.Until(stalled.Add(StallFor)))
		n.Resume()
	})
}

// networkResetNoLoss: every connection is reset three times, 500ms apart,
// while messages are published one by one; every message whose Publish
// returned nil is delivered.
func networkResetNoLoss(t *testing.T, e *env) {
	n := needNetwork(t, e)
	runNetworkFault(t, e, "reset", func(t *testing.T, _ *subscription) {
		for range 3 {
			n.Reset()
			time.Sleep(500 * time.Millisecond)
		}
	})
}

// runNetworkFault runs fault while one publisher publishes one message at
// a time, each bounded by networkPublishCtx, and two subscriptions of the
// case group consume (fault may end the second one). It then checks that
// every message Publish confirmed is delivered, and logs a line for the
// fault table: published, confirmed, lost, duplicated, time to recover.
func runNetworkFault(t *testing.T, e *env, name string, fault func(t *testing.T, second *subscription)) {
	pub, con := e.open(t), e.open(t)
	e.provision(t, pub, e.topic, e.group)
	c := newCollector()
	e.sub(t, con, c.handler(0, nil))
	second := e.sub(t, con, c.handler(1, nil))

	var mu sync.Mutex
	var confirmed []string
	var failed int
	var firstOKAfter time.Time // first confirmed Publish that began after the fault
	stop := make(chan struct{})
	var faultEnded time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := &mq.Message{Key: "k" + strconv.Itoa(i%4), Body: []byte(name + "-" + strconv.Itoa(i))}
			ctx, cancel := context.WithTimeout(context.Background(), networkPublishCtx)
			began := time.Now()
			err := pub.Publish(ctx, e.topic, m)
			cancel()
			took := time.Since(began)
			if took > networkPublishCtx+CloseSlack {
				t.Errorf("Publish took %v, want at most its ctx %v + %v", took, networkPublishCtx, CloseSlack)
			}
			mu.Lock()
			if err == nil {
				confirmed = append(confirmed, m.ID)
				if !faultEnded.IsZero() && began.After(faultEnded) && firstOKAfter.IsZero() {
					firstOKAfter = time.Now()
				}
			} else {
				failed++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond) // back off as a service would
			} else {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	e.await(t, c, "deliveries before the fault", func() bool { return c.total() >= 5 })
	faultStart := time.Now()
	fault(t, second)
	mu.Lock()
	faultEnded = time.Now()
	mu.Unlock()
	// Keep publishing until a Publish begun after the fault succeeds, then
	// a little longer.
	e.eventually(t, "a Publish begun after the fault to succeed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !firstOKAfter.IsZero()
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	mu.Lock()
	ids := append([]string(nil), confirmed...)
	recovered := firstOKAfter.Sub(faultEnded)
	mu.Unlock()
	e.awaitAckedFor(t, 2*e.timeout, c, "confirmed around the network "+name, ids)
	delivered := time.Since(faultEnded)
	dups := 0
	for _, id := range ids {
		if k := c.acks(id); k > 1 {
			dups += k - 1
		}
	}
	t.Logf("%s", fmt.Sprintf("network %s (%v): %d confirmed, %d Publish calls failed, lost 0, duplicated %d, Publish recovered %v after the fault ended, all delivered within %v",
		name, faultEnded.Sub(faultStart).Round(time.Millisecond), len(ids), failed, dups, recovered.Round(time.Millisecond), delivered.Round(time.Millisecond)))
}
