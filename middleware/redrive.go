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
	// rejects stay in the dead-letter topic: Redrive negatively
	// acknowledges them with mq.RetryAfter(SkipDelay), so the broker offers
	// them again later (to this run, which skips them again without
	// counting them as new, or to the next). Each skip is a delivery
	// attempt on the dead-letter topic, which matters only if that topic
	// has a dead-letter policy of its own.
	Filter func(m *mq.Message) bool

	// Publisher receives the moved messages. Default: the broker Redrive
	// reads from.
	Publisher mq.Publisher

	// Topic returns the topic to move m to. Default: m's HeaderTopic
	// header, the topic it was dead-lettered from. A message without that
	// header, and without a Topic func, is left in the dead-letter topic.
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

	// SkipDelay is how long a dead letter Filter rejected stays hidden
	// before the broker offers it again. Default 1s.
	SkipDelay time.Duration
}

// HeaderOriginalID names the header in which Redrive records a moved
// message's original ID, unless RedriveOptions.KeepID is set. A message
// redriven more than once keeps the first original ID.
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
// Redrive subscribes to dlq on b and blocks until Idle passes without a
// new dead letter, Limit messages were moved, or ctx ends; it then returns
// the count and nil (or ctx.Err() when ctx ended first, or the error that
// stopped the subscription).
func Redrive(ctx context.Context, b mq.Broker, dlq string, o RedriveOptions) (int, error) {
	if o.Publisher == nil {
		o.Publisher = b
	}
	if o.Idle <= 0 {
		o.Idle = 5 * time.Second
	}
	if o.SkipDelay <= 0 {
		o.SkipDelay = time.Second
	}
	if o.Topic == nil {
		o.Topic = func(m *mq.Message) string { return m.Header[HeaderTopic] }
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errDone := errors.New("redrive done")

	var (
		mu     sync.Mutex
		moved  int
		busy   int // handlers running
		seen   = map[string]bool{}
		last   = time.Now()
		ticker = time.NewTicker(min(o.Idle/4+time.Millisecond, 250*time.Millisecond))
	)
	defer ticker.Stop()
	// fresh records a delivery and reports whether its ID is new.
	fresh := func(m *mq.Message) bool {
		mu.Lock()
		defer mu.Unlock()
		if seen[m.ID] {
			return false
		}
		seen[m.ID] = true
		last = time.Now()
		return true
	}
	h := func(hctx context.Context, m *mq.Message) error {
		isNew := fresh(m)
		mu.Lock()
		busy++
		mu.Unlock()
		defer func() {
			mu.Lock()
			busy--
			if isNew {
				last = time.Now()
			}
			mu.Unlock()
		}()
		topic := o.Topic(m)
		if (o.Filter != nil && !o.Filter(m)) || topic == "" {
			return mq.RetryAfter(errors.New("middleware: redrive skips this dead letter"), o.SkipDelay)
		}
		mu.Lock()
		full := o.Limit > 0 && moved >= o.Limit
		mu.Unlock()
		if full {
			return mq.RetryAfter(errors.New("middleware: redrive limit reached"), o.SkipDelay)
		}
		back := &mq.Message{ID: m.ID, Key: m.Key, Body: m.Body, Header: make(map[string]string, len(m.Header)+1)}
		for k, v := range m.Header {
			if !strings.HasPrefix(k, HeaderPrefix) {
				back.Header[k] = v
			}
		}
		if !o.KeepID {
			if _, ok := back.Header[HeaderOriginalID]; !ok {
				back.Header[HeaderOriginalID] = m.ID
			}
			back.ID = mq.NewID()
		}
		if err := o.Publisher.Publish(hctx, topic, back); err != nil {
			return fmt.Errorf("middleware: redrive to %q: %w", topic, err)
		}
		mu.Lock()
		moved++
		if o.Limit > 0 && moved >= o.Limit {
			cancel(errDone)
		}
		mu.Unlock()
		return nil
	}

	var opts []mq.SubscribeOption
	if o.Group != "" {
		opts = append(opts, mq.Group(o.Group))
	}
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, dlq, h, opts...) }()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-ticker.C:
			mu.Lock()
			idle := busy == 0 && time.Since(last) >= o.Idle
			mu.Unlock()
			if idle {
				cancel(errDone)
			}
		}
	}
	mu.Lock()
	n := moved
	mu.Unlock()
	if errors.Is(context.Cause(ctx), errDone) && errors.Is(err, context.Canceled) {
		return n, nil
	}
	return n, err
}
