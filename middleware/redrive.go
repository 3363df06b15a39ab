package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/seedmq/mq"
)

// RedriveOptions configures Redrive.
type RedriveOptions struct {
	// Group is the group that reads the dead-letter topic. Default: none
	// given, so the driver's default group (its URL's group parameter).
	Group string

	// Filter selects the dead letters to move. Default: all. Those it
	// rejects stay in the dead-letter topic: Redrive publishes a copy of
	// each to the back of the dead-letter topic (new ID, the original in
	// HeaderOriginalID, every header kept) and only then acknowledges it.
	// Rejecting by negative acknowledgement instead would not work on
	// every broker: Kafka redelivers in place, so a rejected message would
	// hold its handler slot and the commit point, and the next run would
	// move again what this one moved.
	Filter func(m *mq.Message) bool

	// Publisher receives the moved messages. Default: the broker Redrive
	// reads from.
	Publisher mq.Publisher

	// Topic returns the topic to move m to. Default: m's HeaderTopic
	// header, the topic it was dead-lettered from. A message without that
	// header, and without a Topic func, is left in the dead-letter topic
	// as if Filter had rejected it.
	Topic func(m *mq.Message) string

	// Idle ends the run once no dead letter Redrive has not seen before
	// arrived for this long. Default 5s; brokers that take seconds to
	// start delivering to a new subscriber want more.
	Idle time.Duration

	// Limit ends the run after moving this many messages. Default 0, no
	// limit.
	Limit int

	// KeepID republishes each message with its original ID. Default
	// false: each gets a new ID, and the original one goes in the
	// HeaderOriginalID header. Brokers that deduplicate by ID, such as SQS
	// FIFO queues (the driver's deduplication ID is the message ID, kept
	// for five minutes), silently drop a message republished with an ID
	// they saw recently, so keeping the ID can lose the redriven message.
	KeepID bool
}

// HeaderOriginalID names the header in which Redrive records a message's
// original ID when it gives the message a new one. A message redriven or
// set aside more than once keeps the first original ID.
const HeaderOriginalID = "redrive-original-id"

// Redrive moves dead letters from the dead-letter topic dlq back to the
// topic they came from (or to Topic(m)), all of them or those Filter
// selects, and returns how many it moved. Each moved message keeps its Key
// and Body and gets back its original headers: the HeaderPrefix ones
// DeadLetter added are removed. It gets a new ID, with the original in the
// HeaderOriginalID header, unless KeepID is set (see KeepID for why). A
// dead letter is acknowledged only after its publish returned nil, so a
// failure leaves it in the dead-letter topic, never loses it; a failure
// after the broker accepted the publish can move it twice.
//
// Redrive subscribes to dlq on b with concurrency 1 and blocks until Idle
// passes without a dead letter it has not seen before, Limit messages
// were moved, or ctx ends. (Seeing a message it set aside come round again
// does not end the run: on a partitioned topic, such as Kafka's, it can
// come round before other partitions were read.) It then returns the count and nil
// (or ctx.Err() when ctx ended first, or the error that stopped the
// subscription). A run that stopped early can be repeated: it resumes with
// what is left.
func Redrive(ctx context.Context, b mq.Broker, dlq string, o RedriveOptions) (int, error) {
	if o.Publisher == nil {
		o.Publisher = b
	}
	if o.Idle <= 0 {
		o.Idle = 5 * time.Second
	}
	if o.Topic == nil {
		o.Topic = func(m *mq.Message) string { return m.Header[HeaderTopic] }
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &redrive{o: o, b: b, dlq: dlq, stop: func() { cancel(errRedriveDone) }, seen: map[string]bool{}, last: time.Now()}

	var opts []mq.SubscribeOption
	if o.Group != "" {
		opts = append(opts, mq.Group(o.Group))
	}
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, dlq, r.handle, opts...) }()
	ticker := time.NewTicker(min(o.Idle/4+time.Millisecond, 250*time.Millisecond))
	defer ticker.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-ticker.C:
			if r.idle() {
				r.stop()
			}
		}
	}
	n := r.count()
	if errors.Is(context.Cause(ctx), errRedriveDone) && errors.Is(err, context.Canceled) {
		return n, nil
	}
	return n, err
}

// errRedriveDone is the cancellation cause of a run that finished.
var errRedriveDone = errors.New("middleware: redrive done")

// redrive is the state of one Redrive run.
type redrive struct {
	o    RedriveOptions
	b    mq.Broker
	dlq  string
	stop func()

	mu    sync.Mutex
	moved int
	busy  int             // handlers running
	seen  map[string]bool // original IDs handled in this run
	last  time.Time       // when the last new dead letter was handled
}

// handle moves one dead letter, or sets it aside.
func (r *redrive) handle(ctx context.Context, m *mq.Message) error {
	orig := m.Header[HeaderOriginalID]
	if orig == "" {
		orig = m.ID
	}
	r.mu.Lock()
	again := r.seen[orig]
	r.seen[orig] = true
	full := r.o.Limit > 0 && r.moved >= r.o.Limit
	r.busy++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.busy--
		if !again {
			r.last = time.Now()
		}
		r.mu.Unlock()
	}()
	if full {
		return errors.New("middleware: redrive limit reached; the message stays in the dead-letter topic")
	}

	topic := r.o.Topic(m)
	if topic == "" || (r.o.Filter != nil && !r.o.Filter(m)) {
		if again {
			// Back at a message this run set aside. That does not mean
			// the whole topic was read: on a partitioned topic its copy
			// can come back before other partitions deliver. Pace the
			// cycle so it costs a few publishes per Idle, and let Idle
			// end the run.
			// The pause does not count as busy, or a run whose Filter
			// rejects something would never be idle; the run may end
			// during it, never during the publish below.
			r.mu.Lock()
			r.busy--
			r.mu.Unlock()
			t := time.NewTimer(r.o.Idle / 4)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			r.mu.Lock()
			r.busy++
			r.mu.Unlock()
			if err := ctx.Err(); err != nil {
				return err // not acknowledged: it stays a dead letter
			}
		}
		return r.setAside(ctx, m, orig)
	}

	back := &mq.Message{Key: m.Key, Body: m.Body, Header: make(map[string]string, len(m.Header)+1)}
	for k, v := range m.Header {
		if !strings.HasPrefix(k, HeaderPrefix) {
			back.Header[k] = v
		}
	}
	if r.o.KeepID {
		back.ID = orig
		delete(back.Header, HeaderOriginalID)
	} else {
		back.ID = mq.NewID()
		back.Header[HeaderOriginalID] = orig
	}
	if err := r.o.Publisher.Publish(ctx, topic, back); err != nil {
		return fmt.Errorf("middleware: redrive to %q: %w", topic, err)
	}
	r.mu.Lock()
	r.moved++
	if r.o.Limit > 0 && r.moved >= r.o.Limit {
		r.stop()
	}
	r.mu.Unlock()
	return nil
}

// setAside publishes a copy of m to the back of the dead-letter topic, so
// that acknowledging m leaves it there.
func (r *redrive) setAside(ctx context.Context, m *mq.Message, orig string) error {
	c := &mq.Message{ID: mq.NewID(), Key: m.Key, Body: m.Body, Header: make(map[string]string, len(m.Header)+1)}
	for k, v := range m.Header {
		c.Header[k] = v
	}
	c.Header[HeaderOriginalID] = orig
	if err := r.b.Publish(ctx, r.dlq, c); err != nil {
		return fmt.Errorf("middleware: redrive: setting aside a dead letter in %q: %w", r.dlq, err)
	}
	return nil
}

// idle reports whether the run has had nothing new to do for Idle.
func (r *redrive) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy == 0 && time.Since(r.last) >= r.o.Idle
}

func (r *redrive) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.moved
}
