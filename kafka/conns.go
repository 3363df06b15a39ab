package kafka

import (
	"context"
	"net"
	"sync"

	"github.com/segmentio/kafka-go"
)

// connSet dials the connections of one kafka.Transport and closes them
// all at the end, those busy with a request included.
// Transport.CloseIdleConnections closes only idle ones, and a request
// whose ctx ends keeps its connection reading until the broker answers (a
// fetch waits up to fetchMaxWait, a JoinGroup up to the rebalance
// timeout, a stalled network forever), so without it a stopped
// subscription would leave goroutines behind.
type connSet struct {
	dialer net.Dialer
	dialFn func(ctx context.Context, network, addr string) (net.Conn, error) // Options.dial
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// newTransport returns a transport of its own for a consumer's requests,
// with the broker's connection settings, and a function that closes every
// connection it opened.
func (b *Broker) newTransport() (*kafka.Transport, func()) {
	set := &connSet{dialer: net.Dialer{Timeout: b.cfg.DialTimeout}, dialFn: b.cfg.dial, conns: map[*trackedConn]struct{}{}}
	tr := &kafka.Transport{
		Dial:        set.dial,
		DialTimeout: b.cfg.DialTimeout,
		ClientID:    b.cfg.ClientID,
		TLS:         b.cfg.TLS,
		SASL:        b.cfg.SASL,
	}
	return tr, func() {
		tr.CloseIdleConnections()
		set.closeAll()
	}
}

func (s *connSet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := s.dialer.DialContext
	if s.dialFn != nil {
		dial = s.dialFn
	}
	c, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, set: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// closeAll closes every open connection; later dials fail.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	clear(s.conns)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Conn.Close()
	}
}

// trackedConn leaves its set when closed.
type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.conns, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}
