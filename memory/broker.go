package memory

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Scheme is the URL scheme this package registers with mq.Open.
const Scheme = "mem"

// Defaults for Options.
const (
	// DefaultMaxMessageBytes is the default Options.MaxMessageBytes: 1 MiB,
	// Kafka's default limit, so code tested here fits real brokers.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultMaxDelay is the longest Message.Delay accepted, SQS's limit.
	DefaultMaxDelay = 15 * time.Minute
)

func init() {
	mq.Register(Scheme, func(ctx context.Context, u *url.URL) (mq.Broker, error) {
		opts, err := optionsFromURL(u)
		if err != nil {
			return nil, err
		}
		return New(opts), nil
	})
}

// Options configures a Broker. The zero value is a private broker with
// the defaults below.
type Options struct {
	// Name selects a process-wide in-memory server: every Broker opened
	// with the same non-empty Name shares its topics, groups and messages,
	// as connections to one real broker do. An empty Name gives the Broker
	// a private server of its own. Named servers live as long as the
	// process.
	Name string
	// Group is the group used by Subscribe calls without mq.Group.
	// Default: none, so Subscribe then fails with mq.ErrInvalidOption.
	Group string
	// NoProvision makes Publish and Subscribe fail with mq.ErrNotFound for
	// topics and groups not created by Provision, as brokers whose
	// topology is owned by infrastructure do. Default false: they are
	// created on first use.
	NoProvision bool
	// MaxMessageBytes is the largest mq.Message.Size accepted. Default
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxHeaders is the most headers a message may carry. Default 0, no
	// limit. Set 10 to catch code that would break on SQS.
	MaxHeaders int
	// AckDeadline, when positive, is how long a handler may hold a message
	// before it is redelivered to another consumer while the first still
	// works on it, as SQS's visibility timeout does. The late handler's
	// acknowledgement is then discarded. Default 0: no deadline.
	AckDeadline time.Duration
	// Retain is how many of its newest messages each topic keeps in its
	// log for groups created later with mq.StartAt(mq.Earliest), as
	// Kafka's retention limits what a new consumer group can replay.
	// Dropping a message from the log never takes it from a group that
	// already has it: it stays until acknowledged. Default 0: keep every
	// message for as long as the server exists, so that a topic's memory
	// grows with everything published to it; set Retain for a
	// long-running process. On a named server, the Retain of the Broker
	// that publishes applies. Negative values count as 0.
	Retain int
	// Logger receives driver logs (dropped permanent failures, handler
	// panics). Default slog.Default().
	Logger *slog.Logger
}

func optionsFromURL(u *url.URL) (Options, error) {
	if u.User != nil || u.Path != "" && u.Path != "/" || u.Port() != "" {
		return Options{}, fmt.Errorf("memory: %w: use mem://NAME?param=value; the URL has a user, port or path", mq.ErrInvalidURL)
	}
	p := driver.NewParams("memory", u)
	o := Options{
		Name:            u.Hostname(),
		Group:           p.String("group", ""),
		NoProvision:     !p.Bool("provision", true),
		MaxMessageBytes: p.Int("maxMessageBytes", DefaultMaxMessageBytes, 1, 1<<30),
		MaxHeaders:      p.Int("maxHeaders", 0, 0, 1<<16),
		AckDeadline:     p.Duration("ackDeadline", 0, 0, 24*time.Hour),
		Retain:          p.Int("retain", 0, 0, 1<<30),
	}
	return o, p.Err()
}

// Broker is a connection to an in-process server. It implements
// mq.Broker, mq.Provisioner and mq.Pinger, and adds fault injection for
// tests. All methods are safe for concurrent use.
type Broker struct {
	srv  *server
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	closed   bool
	closing  chan struct{}   // closed when Close begins
	closeCtx context.Context // Close's ctx, for draining subscriptions
	subs     sync.WaitGroup
	live     map[*subscription]struct{}
	faults   []error // errors for the next Publish calls, in order

	// plain is true while the Broker is open and has no faults queued:
	// Publish then need not take mu. Written under mu.
	plain  atomic.Bool
	limits driver.Limits // driver.LimitsOf(Capabilities()), for Publish
}

var (
	_ mq.Broker      = (*Broker)(nil)
	_ mq.Provisioner = (*Broker)(nil)
	_ mq.Pinger      = (*Broker)(nil)
)

// New returns a Broker with opts. It never fails: invalid values are
// replaced by defaults.
func New(opts Options) *Broker {
	opts.Retain = max(opts.Retain, 0)
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Broker{
		srv:     serverNamed(opts.Name),
		opts:    opts,
		log:     opts.Logger,
		closing: make(chan struct{}),
		live:    map[*subscription]struct{}{},
	}
	b.limits = driver.LimitsOf(b.Capabilities())
	b.plain.Store(true)
	return b
}

// Capabilities reports everything but persistence: a memory server lives
// only as long as its process.
func (b *Broker) Capabilities() mq.Capabilities {
	return mq.Capabilities{
		Driver:          "memory",
		FanOut:          true,
		OrderingByKey:   true,
		Replay:          true,
		NackDelay:       true,
		DelayedDelivery: true,
		MaxDelay:        DefaultMaxDelay,
		Persistent:      false,
		MaxMessageBytes: b.opts.MaxMessageBytes,
		MaxHeaders:      b.opts.MaxHeaders,
	}
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Publish stores msgs in topic and hands a copy to every group of the
// topic. It returns once all are stored; it never blocks on consumers.
func (b *Broker) Publish(ctx context.Context, topicName string, msgs ...*mq.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := driver.ValidateName("topic", topicName); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if err := driver.PrepareMessages(msgs, b.limits); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	if !b.plain.Load() {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return fmt.Errorf("memory: Publish: %w", mq.ErrClosed)
		}
		if len(b.faults) > 0 {
			err := b.faults[0]
			b.faults = b.faults[1:]
			b.plain.Store(len(b.faults) == 0)
			b.mu.Unlock()
			return fmt.Errorf("memory: injected publish failure: %w", err)
		}
		b.mu.Unlock()
	}

	// Copy outside the server lock: the caller may reuse its buffers
	// once Publish returns, as with any broker. One allocation holds the
	// entries, their Messages and their first group's pending records.
	entries := make([]entry, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		e := &entries[i]
		e.id, e.key, e.published, e.delay = m.ID, m.Key, now, m.Delay
		switch {
		case len(m.Body) > 0:
			// append allocates without zeroing what it then copies
			// over; make+copy here zeroed the body first.
			e.body = append([]byte(nil), m.Body...)
		case m.Body != nil:
			e.body = []byte{}
		}
		if m.Header != nil {
			e.header = maps.Clone(m.Header)
		}
	}

	s := b.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil {
		if b.opts.NoProvision {
			return fmt.Errorf("memory: %w: topic %q does not exist and provisioning is off; call Provision first", mq.ErrNotFound, topicName)
		}
		t = s.newTopic(topicName)
	}
	var more []pending // records for the groups after the first
	if len(t.groups) > 1 {
		more = make([]pending, len(entries)*(len(t.groups)-1))
	}
	for i := range entries {
		e := &entries[i]
		t.seq++
		e.seq = t.seq
		t.log.append(e, b.opts.Retain)
		first := true
		for _, g := range t.groups {
			if first {
				g.add(e, &e.first)
				first = false
				continue
			}
			g.add(e, &more[0])
			more = more[1:]
		}
	}
	return nil
}

func (s *server) newTopic(name string) *topic {
	t := &topic{name: name, groups: map[string]*group{}}
	s.topics[name] = t
	return t
}

// Provision creates topic and groups that do not exist. A new group
// starts empty: it receives messages published from now on.
func (b *Broker) Provision(ctx context.Context, topicName string, groups ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.isClosed() {
		return fmt.Errorf("memory: Provision: %w", mq.ErrClosed)
	}
	if err := driver.ValidateName("topic", topicName); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	for _, g := range groups {
		if err := driver.ValidateName("group", g); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	s := b.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil {
		t = s.newTopic(topicName)
	}
	for _, name := range groups {
		if t.groups[name] == nil {
			t.groups[name] = newGroup(topicName, name)
		}
	}
	return nil
}

// Ping returns mq.ErrClosed after Close, else nil.
func (b *Broker) Ping(ctx context.Context) error {
	if b.isClosed() {
		return fmt.Errorf("memory: Ping: %w", mq.ErrClosed)
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
// Close waits for the handlers to return and returns ctx.Err(). Later
// calls return nil.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.plain.Store(false)
	b.closeCtx = ctx
	close(b.closing)
	b.mu.Unlock()
	b.subs.Wait()
	return ctx.Err()
}

// InjectPublishErrors makes the next len(errs) Publish calls on this
// Broker fail, in order, with the given errors (wrapped), before storing
// anything. Use it to test how a service copes with a broker refusing
// messages.
func (b *Broker) InjectPublishErrors(errs ...error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = append(b.faults, errs...)
	b.plain.Store(!b.closed && len(b.faults) == 0)
}
