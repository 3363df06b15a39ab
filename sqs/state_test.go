package sqs_test

import (
	"context"
	"io"
	"net"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs/sqstest"
)

// gate forwards TCP connections to a server while it is up, and while it
// is down closes every connection, open or new, at once: the server
// seems to refuse its clients, on the same address throughout.
type gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newGate(t *testing.T, target string) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(func() {
		ln.Close()
		g.setDown(true)
		g.wg.Wait()
	})
	return g
}

func (g *gate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.down {
			g.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", g.target, 5*time.Second)
		if err != nil {
			g.mu.Unlock()
			c.Close()
			continue
		}
		g.conns[c], g.conns[s] = struct{}{}, struct{}{}
		g.mu.Unlock()
		g.wg.Add(2)
		go g.pipe(c, s)
		go g.pipe(s, c)
	}
}

func (g *gate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	g.mu.Lock()
	delete(g.conns, dst)
	delete(g.conns, src)
	g.mu.Unlock()
}

func (g *gate) setDown(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = down
	if down {
		for c := range g.conns {
			c.Close()
		}
	}
}

// TestSubscriptionState checks that a subscription reports itself
// connected once receiving works, not connected while the server refuses
// it, connected again after, and stopped when Subscribe returns.
func TestSubscriptionState(t *testing.T) {
	endpoint, region := sqstest.Endpoint(t)
	u, err := neturl.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(t, u.Host)
	u.Host = g.ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := mq.Open(ctx, "sqs://?wait_time=1s&region="+neturl.QueryEscape(region)+"&endpoint="+neturl.QueryEscape(u.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	top := topic(t)
	if err := mq.Provision(ctx, b, top, "g"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []mq.SubscriptionState
	last := func() (mq.SubscriptionState, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return mq.SubscriptionState{}, 0
		}
		return got[len(got)-1], len(got)
	}
	stop := subscribe(t, b, top, func(context.Context, *mq.Message) error { return nil }, mq.Group("g"),
		mq.WatchState(func(st mq.SubscriptionState) {
			mu.Lock()
			got = append(got, st)
			mu.Unlock()
		}))
	await := func(what string, connected bool) {
		t.Helper()
		for ctx.Err() == nil {
			if st, n := last(); n > 0 && st.Connected == connected && st.Assigned == -1 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: not within the test's bound; reports %+v", what, got)
	}
	await("connected", true)
	g.setDown(true)
	await("not connected while the server refuses", false)
	g.setDown(false)
	await("connected again", true)
	if err := stop(); err != context.Canceled {
		t.Errorf("Subscribe: got %v, want context.Canceled", err)
	}
	if st, _ := last(); st.Connected || !st.Stopped {
		t.Errorf("last report: got %+v, want not connected, stopped", st)
	}
}
