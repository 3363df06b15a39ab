package memory

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Scheme is the URL scheme this package registers with mq.Open.
const Scheme = "mem"

func init() {
	mq.Register(Scheme, func(ctx context.Context, u *url.URL) (mq.Broker, error) {
		opts, err := optionsFromURL(u)
		if err != nil {
			return nil, err
		}
		b, err := New(ctx, opts)
		if err != nil {
			return nil, err // not a nil *Broker in a non-nil mq.Broker
		}
		return b, nil
	})
}

// Broker is a connection to an in-process server. It implements
// mq.Broker, mq.Provisioner and mq.Pinger, and adds fault injection for
// tests. All methods are safe for concurrent use.
type Broker struct {
	srv    *server
	opts   Options
	log    *slog.Logger
	life   driver.Lifecycle
	limits driver.Limits // driver.LimitsOf(Capabilities()), for Publish

	mu     sync.Mutex
	live   map[*subscription]struct{}
	faults []error // errors for the next Publish calls, in order

	// plain is true while no faults are queued: Publish then need not
	// take mu. Written under mu.
	plain atomic.Bool
}

var (
	_ mq.Broker      = (*Broker)(nil)
	_ mq.Provisioner = (*Broker)(nil)
	_ mq.Pinger      = (*Broker)(nil)
)

// New returns a Broker with opts, connected to the server opts.Name
// selects. Invalid options (a negative number or duration, a malformed
// Group) are an error wrapping mq.ErrInvalidOption. New does not block:
// it has no network to reach, and takes ctx for the constructor shape
// every driver shares.
func New(ctx context.Context, opts Options) (*Broker, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{
		srv:  serverNamed(opts.Name),
		opts: opts,
		log:  opts.Logger,
		live: map[*subscription]struct{}{},
	}
	b.limits = driver.LimitsOf(b.Capabilities())
	b.plain.Store(true)
	return b, nil
}

// Capabilities reports everything but persistence: a memory server lives
// only as long as its process.
func (b *Broker) Capabilities() mq.Capabilities {
	return mq.Capabilities{
		Driver:            "memory",
		FanOut:            true,
		OrderingByKey:     true,
		Replay:            true,
		NackDelay:         true,
		DelayedDelivery:   true,
		MaxDelay:          DefaultMaxDelay,
		Persistent:        false,
		MaxMessageBytes:   b.opts.MaxMessageBytes,
		MaxHeaders:        b.opts.MaxHeaders,
		MaxKeyBytes:       b.opts.MaxKeyBytes,
		MaxHeaderKeyBytes: b.opts.MaxHeaderKeyBytes,
		MaxHeaderBytes:    b.opts.MaxHeaderBytes,
	}
}

// Ping returns mq.ErrClosed after Close, else ctx's error.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.life.Err(); err != nil {
		return fmt.Errorf("memory: Ping: %w", err)
	}
	return ctx.Err()
}

// Depth returns how many messages group has not acknowledged yet on
// topic, those being handled included. It returns mq.ErrNotFound if the
// topic or group does not exist.
func (b *Broker) Depth(topicName, groupName string) (int, error) {
	s := b.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil || t.groups[groupName] == nil {
		return 0, fmt.Errorf("memory: %w: no group %q on topic %q", mq.ErrNotFound, groupName, topicName)
	}
	return t.groups[groupName].count, nil
}

// As supports *Broker (this broker itself), the memory driver having no
// other native client.
func (b *Broker) As(target any) bool {
	if p, ok := target.(**Broker); ok {
		*p = b
		return true
	}
	return false
}

// Close stops every subscription of this broker: they stop taking
// messages, their running handlers finish and are acknowledged, and
// Subscribe returns mq.ErrClosed. Messages taken but not yet handled go
// back to their group. If ctx ends first, handler contexts are canceled;
// Close waits up to driver.CloseGrace more for the handlers to return and
// returns ctx.Err(). Later calls return nil. Publish, Provision and Ping
// return mq.ErrClosed once Close has begun.
func (b *Broker) Close(ctx context.Context) error {
	return b.life.Close(ctx, nil)
}
