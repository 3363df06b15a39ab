package kafka_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/seedmq/mq/internal/tcpproxy"
)

// proxyNetwork is the conformance suite's Harness.Network for Kafka: its
// dial sends every connection the driver makes, to a bootstrap broker or
// to one the cluster advertises, through a tcpproxy.Proxy for that
// address (started on first use), so Stall, Resume and Reset reach all of
// them.
type proxyNetwork struct {
	t       testing.TB
	mu      sync.Mutex
	proxies map[string]*tcpproxy.Proxy // target address → its proxy
	stalled bool
}

func newProxyNetwork(t testing.TB) *proxyNetwork {
	n := &proxyNetwork{t: t, proxies: map[string]*tcpproxy.Proxy{}}
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, p := range n.proxies {
			_ = p.Close()
		}
	})
	return n
}

// dial connects to the proxy for addr.
func (n *proxyNetwork) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	p, ok := n.proxies[addr]
	if !ok {
		var err error
		p, err = tcpproxy.New(addr)
		if err != nil {
			n.mu.Unlock()
			return nil, err
		}
		if n.stalled {
			p.Stall()
		}
		n.proxies[addr] = p
	}
	n.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, p.Addr())
}

func (n *proxyNetwork) each(f func(p *tcpproxy.Proxy)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.proxies {
		f(p)
	}
}

func (n *proxyNetwork) Stall() {
	n.mu.Lock()
	n.stalled = true
	n.mu.Unlock()
	n.each((*tcpproxy.Proxy).Stall)
}

func (n *proxyNetwork) Resume() {
	n.mu.Lock()
	n.stalled = false
	n.mu.Unlock()
	n.each((*tcpproxy.Proxy).Resume)
}

func (n *proxyNetwork) Reset() { n.each((*tcpproxy.Proxy).Reset) }
