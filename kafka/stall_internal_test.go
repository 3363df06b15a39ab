package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
	"github.com/seedmq/mq/kafka/kafkatest"
)

// stallProxy forwards the driver's connections to the brokers through
// in-process TCP proxies until stall is called; from then on it forwards
// nothing in either direction, while the connections stay open: the
// network stalls. The broker's advertised address needs no change, since
// Options.dial sends every connection, bootstrap or advertised, through
// a proxy for its target.
type stallProxy struct {
	t       *testing.T
	mu      sync.Mutex
	proxies map[string]net.Listener // target → listener
	conns   []net.Conn
	stalled chan struct{} // closed by stall
	closed  chan struct{} // closed at cleanup
	wg      sync.WaitGroup
}

func newStallProxy(t *testing.T) *stallProxy {
	p := &stallProxy{t: t, proxies: map[string]net.Listener{}, stalled: make(chan struct{}), closed: make(chan struct{})}
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) stall() { close(p.stalled) }

// dial connects to the proxy for addr, starting it on first use.
func (p *stallProxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	ln, ok := p.proxies[addr]
	if !ok {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.proxies[addr] = ln
		p.wg.Add(1)
		go p.accept(ln, addr)
	}
	p.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, ln.Addr().String())
}

func (p *stallProxy) accept(ln net.Listener, target string) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst until either fails, holding every byte back
// once stalled.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-p.stalled:
				<-p.closed // hold it back for good
				return
			default:
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) close() {
	close(p.closed)
	p.mu.Lock()
	for _, ln := range p.proxies {
		_ = ln.Close()
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestCloseWithinCtxWhenTheNetworkStalls: with the network to the broker
// stalled (connections open, nothing passing), Close returns within its
// ctx plus driver.CloseGrace, and the running Subscribe returns soon
// after. Regression test for issue 17: a 5s Close took 95 to 155s (a fixed
// 20s leave timeout, a 5s LeaveGroup, kafka-go's own retries).
func TestCloseWithinCtxWhenTheNetworkStalls(t *testing.T) {
	px := newStallProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b, err := New(ctx, Options{
		Brokers: kafkatest.Addrs(t),
		dial:    px.dial,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	topic, group := "stall-"+suffix, "g-"+suffix
	if err := b.Provision(ctx, topic, group); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}
	handled := make(chan struct{}, 10)
	subDone := make(chan error, 1)
	go func() {
		subDone <- b.Subscribe(context.Background(), topic, func(context.Context, *mq.Message) error {
			handled <- struct{}{}
			return nil
		}, mq.Group(group))
	}()
	if err := b.Publish(ctx, topic, mq.NewMessage([]byte("before the stall"))); err != nil {
		t.Fatalf("Publish: got %v, want nil", err)
	}
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatal("the message was not handled within 90s")
	}
	time.Sleep(500 * time.Millisecond) // its commit goes out

	px.stall()
	const deadline = 2 * time.Second
	closeCtx, cancelClose := context.WithTimeout(context.Background(), deadline)
	defer cancelClose()
	start := time.Now()
	err = b.Close(closeCtx)
	took := time.Since(start)
	t.Logf("Close returned %v after %v", err, took)
	if limit := deadline + driver.CloseGrace + 500*time.Millisecond; took > limit {
		t.Errorf("Close took %v with the network stalled, want at most %v (its ctx plus driver.CloseGrace)", took, limit)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: got %v, want nil or context.DeadlineExceeded", err)
	}
	select {
	case err := <-subDone:
		if !errors.Is(err, mq.ErrClosed) {
			t.Errorf("Subscribe after Close: got %v, want mq.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Subscribe did not return within 5s of Close")
	}
}
