// Package tcpproxy is a TCP proxy for tests that inject network faults
// between a client and a broker: Stall stops every byte in both
// directions while keeping connections open (a partition, a frozen
// switch), Resume lets them flow again, and Reset closes every connection
// with a TCP reset (a broker or NAT that forgot the connection).
//
// It is for tests only: it binds 127.0.0.1 and favours simplicity over
// throughput.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections accepted on Addr to a target address. All
// methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	open    chan struct{} // closed while bytes flow; replaced by Stall
	conns   map[*pair]struct{}
	closed  bool
	stalled bool
	wg      sync.WaitGroup
}

// pair is one proxied connection: the client's and the target's side.
type pair struct {
	client, server net.Conn
	done           chan struct{}
	once           sync.Once
}

// New listens on 127.0.0.1 on a free port and forwards every connection
// it accepts to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, open: make(chan struct{}), conns: map[*pair]struct{}{}}
	close(p.open)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stall stops forwarding in both directions on every connection, open or
// opened later, until Resume. Connections stay open; bytes already read
// wait in the proxy, further ones in the kernel's buffers.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stalled {
		p.stalled = true
		p.open = make(chan struct{})
	}
}

// Resume ends a Stall: held bytes flow on.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled {
		p.stalled = false
		close(p.open)
	}
}

// Reset closes every open connection with a TCP reset on both sides.
// New connections are accepted as before (still stalled, if the proxy
// is).
func (p *Proxy) Reset() {
	p.mu.Lock()
	conns := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

// Conns returns how many connections are open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops accepting, resets every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Resume()
	p.Reset()
	p.wg.Wait()
	return err
}

func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		resetConn(client)
		return
	}
	c := &pair{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.reset()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.copy(c, server, client) })
	wg.Go(func() { p.copy(c, client, server) })
	wg.Wait()
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// copy forwards src to dst, waiting at the gate before each read and
// each write, until src ends (then both sides are closed), either side
// fails, or the pair is reset.
func (p *Proxy) copy(c *pair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if !c.wait(p.gate()) {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !c.wait(p.gate()) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				c.reset()
				return
			}
		}
		if errors.Is(err, io.EOF) {
			// One side closed: close both. Broker protocols never
			// half-close, and a broker can hold the other direction
			// open for as long as a long poll lasts.
			c.close()
			return
		}
		if err != nil {
			c.reset()
			return
		}
	}
}

// wait blocks until gate is open or c is reset; it reports whether the
// gate opened.
func (c *pair) wait(gate <-chan struct{}) bool {
	select {
	case <-gate:
		return true
	case <-c.done:
		return false
	}
}

// close closes both sides, unless the pair was closed or reset already.
func (c *pair) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

func (c *pair) reset() {
	c.once.Do(func() {
		close(c.done)
		resetConn(c.client)
		resetConn(c.server)
	})
}

// resetConn closes conn so that the peer sees a reset, not a clean end.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
