package rabbitmq

import (
	"context"
	"fmt"
	"net/url"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Scheme is the URL scheme of a plain AMQP connection; SchemeTLS is the
// scheme of a TLS connection. Importing the package registers both with
// mq.Open.
const (
	Scheme    = "amqp"
	SchemeTLS = "amqps"
)

func init() {
	open := func(ctx context.Context, u *url.URL) (mq.Broker, error) {
		return New(ctx, Options{URL: u.String()})
	}
	mq.Register(Scheme, open)
	mq.Register(SchemeTLS, open)
}

// Broker is a RabbitMQ connection pair (one connection for publishing, one
// for consuming) implementing mq.Broker, mq.Provisioner and mq.Pinger.
// All methods are safe for concurrent use. Create it with New or mq.Open.
type Broker struct {
	s    *settings
	pub  *link // publishing connection
	sub  *link // consuming connection
	pubs *publisher
	topo *topology

	// life tracks Subscribe, Publish, Provision and Ping calls, and says
	// when Close begins.
	life driver.Lifecycle

	// Background goroutines (dialing, connection watchers, channel
	// closes, abandoned confirms) run until the connections close, which
	// is after every call has returned.
	stop     context.Context // canceled when Close releases the links
	stopLink context.CancelFunc
	wg       sync.WaitGroup // background goroutines
	bgMu     sync.Mutex
	bgDone   bool // set before wg.Wait: spawn starts nothing more
}

// New connects to the broker described by o and returns it. It dials
// once, bounded by ctx, so that a wrong address or wrong credentials fail
// here with a clear error; later connection losses are repaired in the
// background. Invalid options are an error wrapping mq.ErrInvalidOption,
// a bad URL one wrapping mq.ErrInvalidURL. The password never appears in
// errors or logs.
func New(ctx context.Context, o Options) (*Broker, error) {
	s, err := resolve(o)
	if err != nil {
		return nil, err
	}
	stop, cancel := context.WithCancel(context.Background())
	b := &Broker{s: s, stop: stop, stopLink: cancel}
	b.pub = newLink(s, "publish", stop, &b.wg)
	b.sub = newLink(s, "consume", stop, &b.wg)
	b.pubs = newPublisher(b)
	b.topo = newTopology(b)

	conn, host, err := b.pub.dialHosts(ctx, 0)
	if err != nil {
		cancel()
		return nil, err
	}
	b.pub.mu.Lock()
	b.pub.conn = conn
	b.pub.host = host
	b.pub.gen = 1
	b.pub.watch(conn, 1)
	b.pub.mu.Unlock()
	return b, nil
}

// String describes the broker without its password.
func (b *Broker) String() string { return "rabbitmq(" + b.s.redacted + ")" }

// Capabilities reports what the driver offers: fan-out, delayed
// redelivery of failed messages (not with NoProvision), persistence; no
// ordering by key, no replay, no delayed publishing.
func (b *Broker) Capabilities() mq.Capabilities {
	return mq.Capabilities{
		Driver:            "rabbitmq",
		FanOut:            true,
		OrderingByKey:     false,
		Replay:            false,
		NackDelay:         !b.s.NoProvision,
		DelayedDelivery:   false,
		Persistent:        true,
		MaxMessageBytes:   b.s.MaxMessageBytes,
		MaxHeaders:        MaxHeaders,
		MaxKeyBytes:       MaxKeyBytes,
		MaxHeaderKeyBytes: MaxKeyBytes,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Ping checks that the broker answers: it opens and closes a channel on
// the publishing connection, reconnecting first if needed, within ctx.
func (b *Broker) Ping(ctx context.Context) error {
	exit, err := b.life.Enter()
	if err != nil {
		return errClosed
	}
	defer exit()
	conn, _, err := b.pub.get(ctx)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return driver.Retryable(fmt.Errorf("rabbitmq: ping: %w", err))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// As exposes the native client: *amqp091.Connection (the publishing
// connection) and *amqp091.Channel (a new channel on it, which the caller
// must close). It returns false after Close or while disconnected.
func (b *Broker) As(target any) bool {
	if b.life.Err() != nil {
		return false
	}
	switch t := target.(type) {
	case **amqp.Connection:
		c := b.pub.current()
		if c == nil {
			return false
		}
		*t = c
		return true
	case **amqp.Channel:
		c := b.pub.current()
		if c == nil {
			return false
		}
		ch, err := c.Channel()
		if err != nil {
			return false
		}
		*t = ch
		return true
	}
	return false
}

// Close shuts the broker down gracefully: running subscriptions stop
// fetching, let their handlers finish and settle (acks reach the broker
// before the consuming channel closes) and return mq.ErrClosed; Publish,
// Provision and Ping calls in progress finish; then both connections
// close. If ctx ends first, handler contexts are canceled, running calls
// get driver.CloseGrace more to return, the connections close (calls
// still waiting on them fail with mq.ErrClosed) and Close returns
// ctx.Err(). That holds on a stalled network too: Close returns within
// its ctx plus driver.CloseGrace (and a few milliseconds), closing the
// sockets without waiting for the broker's close-ok once ctx has ended.
// Close is idempotent: later calls return nil, and every other method
// returns mq.ErrClosed.
func (b *Broker) Close(ctx context.Context) error {
	return b.life.Close(ctx, b.release)
}

// release closes both connections, once every call has returned or
// Close's grace has run out, and waits for the background goroutines.
func (b *Broker) release(ctx context.Context) error {
	b.stopLink()
	b.pub.shutdown(ctx) // closing a connection closes its channels
	b.sub.shutdown(ctx)
	b.bgMu.Lock()
	b.bgDone = true
	b.bgMu.Unlock()
	b.wg.Wait()
	return nil
}

// spawn runs f in a goroutine that Close waits for, unless Close is
// already waiting; it reports whether it started f.
func (b *Broker) spawn(f func()) bool {
	b.bgMu.Lock()
	defer b.bgMu.Unlock()
	if b.bgDone {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}
