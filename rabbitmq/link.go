package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// link keeps one AMQP connection open: it dials on demand and, after the
// connection is lost, dials again with backoff when the next caller asks
// for it. Publishing and consuming use separate links, so that flow
// control on publishers never stalls acknowledgements.
type link struct {
	s    *settings
	name string          // "publish" or "consume", for logs
	stop context.Context // canceled by shutdown: ends dialing
	wg   *sync.WaitGroup // the broker's background goroutines

	mu      sync.Mutex
	conn    *amqp.Connection
	gen     uint64        // increases with every new connection
	changed chan struct{} // closed when conn is set or lost
	dialing bool
	lastErr error // why the last dial failed or the connection was lost
	closed  bool
	host    int // index in s.hosts of the host of conn, or of the last one

	// blocked is non-nil while the broker blocks the connection (a
	// memory or disk alarm); it is closed when the block lifts.
	blocked atomic.Pointer[chan struct{}]
}

func newLink(s *settings, name string, stop context.Context, wg *sync.WaitGroup) *link {
	return &link{s: s, name: name, stop: stop, wg: wg, changed: make(chan struct{})}
}

// get returns the open connection and its generation, waiting while the
// link (re)connects. It returns ctx's error, with the last connection
// failure for context, if ctx ends first, and ErrClosed after shutdown.
func (l *link) get(ctx context.Context) (*amqp.Connection, uint64, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, 0, errClosed
		}
		if l.conn != nil && !l.conn.IsClosed() {
			c, g := l.conn, l.gen
			l.mu.Unlock()
			return c, g, nil
		}
		if !l.dialing {
			l.dialing = true
			l.wg.Add(1)
			go l.dialLoop()
		}
		wait, last := l.changed, l.lastErr
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			if last != nil {
				return nil, 0, fmt.Errorf("rabbitmq: %w (not connected: %v)", ctx.Err(), last)
			}
			return nil, 0, ctx.Err()
		case <-l.stop.Done():
			return nil, 0, errClosed
		}
	}
}

// signal wakes the waiters of get. l.mu must be held.
func (l *link) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// dialLoop dials until it succeeds or the link stops, with exponential
// backoff and jitter between attempts.
func (l *link) dialLoop() {
	defer l.wg.Done()
	backoff := 50 * time.Millisecond
	l.mu.Lock()
	prev, start := l.host, l.host
	if l.gen > 0 {
		// The connection to prev was lost: that host is likely down, so
		// try the next one first (a URL with one host tries it again).
		start = (prev + 1) % len(l.s.hosts)
	}
	l.mu.Unlock()
	for attempt := 1; ; attempt++ {
		conn, host, err := l.dialHosts(l.stop, start)
		l.mu.Lock()
		if err == nil {
			if l.closed {
				l.mu.Unlock()
				_ = conn.Close()
				return
			}
			if l.gen > 0 {
				l.s.Logger.Info("rabbitmq: reconnected", "link", l.name, "broker", l.s.hosts[host].redacted, "attempts", attempt)
				if host != prev {
					l.s.Logger.Warn("rabbitmq: failed over to another host", "link", l.name,
						"from", l.s.hosts[prev].redacted, "to", l.s.hosts[host].redacted, "reason", l.lastErr)
				}
			}
			l.host = host
			l.conn, l.lastErr, l.dialing = conn, nil, false
			l.gen++
			l.watch(conn, l.gen)
			l.signal()
			l.mu.Unlock()
			return
		}
		l.lastErr = err
		l.signal()
		l.mu.Unlock()
		if attempt == 1 || attempt%10 == 0 {
			l.s.Logger.Warn("rabbitmq: cannot connect; retrying", "link", l.name, "broker", l.s.redacted, "attempt", attempt, "error", err)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, l.s.ReconnectMax)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.stop.Done():
			t.Stop()
			l.mu.Lock()
			l.dialing = false
			l.mu.Unlock()
			return
		}
	}
}

// watch clears conn from the link when it closes, and tracks whether the
// broker blocks it. l.mu must be held.
func (l *link) watch(conn *amqp.Connection, gen uint64) {
	lost := conn.NotifyClose(make(chan *amqp.Error, 1))
	// Buffered: amqp091-go drops a notification it cannot hand over
	// within 5 seconds.
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 16))
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for b := range blocks {
			if b.Active {
				l.s.Logger.Warn("rabbitmq: the broker blocks publishing", "link", l.name, "reason", b.Reason)
				c := make(chan struct{})
				l.setBlocked(&c)
			} else {
				l.setBlocked(nil)
			}
		}
		l.setBlocked(nil) // connection closed
	}()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		e := <-lost // nil when closed by us
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.gen != gen {
			return
		}
		l.conn = nil
		if e != nil {
			l.lastErr = e
			if !l.closed {
				l.s.Logger.Warn("rabbitmq: connection lost", "link", l.name, "broker", l.s.hosts[l.host].redacted, "error", e)
			}
		}
		l.signal()
	}()
}

// setBlocked replaces the blocked marker, releasing waiters of the old one.
func (l *link) setBlocked(c *chan struct{}) {
	if old := l.blocked.Swap(c); old != nil {
		close(*old)
	}
}

// unblocked waits while the broker blocks the connection, bounded by ctx.
func (l *link) unblocked(ctx context.Context) error {
	c := l.blocked.Load()
	if c == nil {
		return nil
	}
	select {
	case <-*c:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: %w (the broker blocks publishing: a resource alarm is active)", ctx.Err())
	}
}

// current returns the open connection without waiting, or nil.
func (l *link) current() *amqp.Connection {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.conn.IsClosed() {
		return nil
	}
	return l.conn
}

// shutdown closes the connection; get returns ErrClosed afterwards. The
// caller cancels l.stop first so dialing ends. It waits for the broker's
// close-ok until ctx's deadline, at most 5s, and not at all once ctx has
// ended (the socket is closed at once), so a stalled network cannot hold
// Close beyond its ctx.
func (l *link) shutdown(ctx context.Context) {
	l.mu.Lock()
	l.closed = true
	conn := l.conn
	l.conn = nil
	l.signal()
	l.mu.Unlock()
	if conn != nil {
		deadline, ok := ctx.Deadline()
		switch {
		case ctx.Err() != nil:
			deadline = time.Now()
		case !ok || time.Until(deadline) > 5*time.Second:
			deadline = time.Now().Add(5 * time.Second)
		}
		_ = conn.CloseDeadline(deadline)
	}
}

// dialHosts tries the URL's hosts in turn, from hosts[start] on and
// round, until one accepts a connection, and returns it and its index.
// A host that fails is logged with the reason when another is tried
// next. When every host fails the error names each failure.
func (l *link) dialHosts(ctx context.Context, start int) (*amqp.Connection, int, error) {
	n := len(l.s.hosts)
	var errs []error
	for k := range n {
		i := (start + k) % n
		conn, err := dial(ctx, l.s, l.s.hosts[i])
		if err == nil {
			return conn, i, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		if k < n-1 {
			l.s.Logger.Warn("rabbitmq: cannot connect to a host; trying the next", "link", l.name,
				"host", l.s.hosts[i].redacted, "next", l.s.hosts[(i+1)%n].redacted, "error", err)
		}
	}
	if len(errs) == 1 {
		return nil, 0, errs[0]
	}
	return nil, 0, fmt.Errorf("rabbitmq: none of the %d hosts accepts a connection: %w", n, errors.Join(errs...))
}

// dial opens one AMQP connection to h, bounded by ctx. It makes amqp091-go's
// errors clear and never includes the password.
func dial(ctx context.Context, s *settings, h endpoint) (*amqp.Connection, error) {
	cfg := s.Config
	if cfg.TLSClientConfig != nil {
		cfg.TLSClientConfig = cfg.TLSClientConfig.Clone()
	}
	if cfg.Properties == nil {
		cfg.Properties = amqp.NewConnectionProperties()
		cfg.Properties.SetClientConnectionName("mq")
	}
	var stopWatch func() bool
	if cfg.Dial == nil {
		cfg.Dial = func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			c, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bound the TLS and AMQP handshakes; amqp091-go clears the
			// deadline once the connection is open.
			deadline, ok := ctx.Deadline()
			if !ok || time.Until(deadline) > 30*time.Second {
				deadline = time.Now().Add(30 * time.Second)
			}
			if err := c.SetDeadline(deadline); err != nil {
				c.Close()
				return nil, err
			}
			stopWatch = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
			return c, nil
		}
	}
	conn, err := amqp.DialConfig(h.dialURL, cfg)
	if stopWatch != nil {
		stopWatch()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rabbitmq: connect to %s: %w", h.redacted, ctx.Err())
		}
		return nil, connectError(h.redacted, err)
	}
	return conn, nil
}
