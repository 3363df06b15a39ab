package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seedmq/mq"
)

// Broker is an mq.Broker backed by Amazon SQS (or a server that speaks its
// API, such as ElasticMQ). Each topic is a queue. Create it with New or
// with mq.Open and an sqs:// URL. All methods are safe for concurrent use.
type Broker struct {
	client *sqs.Client
	opts   Options
	caps   mq.Capabilities
	log    *slog.Logger
	// transport is the HTTP transport of a client made by Open, whose
	// idle connections Close closes; nil for a client passed to New.
	transport *http.Transport

	// base is the parent of every call the broker makes on its own
	// behalf (batched sends, deletes, heartbeats). It is canceled only when
	// Close gives up waiting.
	base       context.Context
	cancelBase context.CancelFunc

	queuesMu  sync.Mutex
	queues    map[string]*queue // by topic
	resolving chan struct{}     // a one-slot semaphore: one queue lookup at a time

	mu      sync.Mutex
	closed  bool
	closing chan struct{} // closed when Close begins
	subs    map[*subscription]struct{}
	work    sync.WaitGroup // running Subscribe calls and send loops
}

// New returns a Broker that uses client, which the caller configures
// (region, credentials, endpoint, retries) and which the Broker does not
// close. It makes no network call: use Ping to check the connection.
func New(client *sqs.Client, o Options) (*Broker, error) {
	if client == nil {
		return nil, fmt.Errorf("sqs: %w: New needs a non-nil *sqs.Client", mq.ErrInvalidOption)
	}
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	b := &Broker{
		client:     client,
		opts:       o,
		log:        o.Logger,
		base:       base,
		cancelBase: cancel,
		queues:     map[string]*queue{},
		resolving:  make(chan struct{}, 1),
		closing:    make(chan struct{}),
		subs:       map[*subscription]struct{}{},
	}
	b.caps = mq.Capabilities{
		Driver:          "sqs",
		FanOut:          false,
		OrderingByKey:   o.FIFO,
		Replay:          false,
		NackDelay:       true,
		DelayedDelivery: !o.FIFO,
		Persistent:      true,
		MaxMessageBytes: o.ServerMaxBytes - headerReserve,
		MaxHeaders:      MaxHeaders,
	}
	if !o.FIFO {
		b.caps.MaxDelay = MaxDelay
	}
	return b, nil
}

// Capabilities reports what the broker can do. FanOut and Replay are
// false: an SQS queue is one group, and deleted messages are gone.
// OrderingByKey is true only with Options.FIFO (every topic a FIFO queue);
// DelayedDelivery is true only without it, as FIFO queues have no
// per-message delay. It does not block.
func (b *Broker) Capabilities() mq.Capabilities { return b.caps }

// String describes the broker without credentials.
func (b *Broker) String() string {
	return "sqs broker (" + endpointOf(b.client) + ")"
}

// As sets *target to the broker's native client: target may be a
// **sqs.Client. It reports whether it could.
func (b *Broker) As(target any) bool {
	switch t := target.(type) {
	case **sqs.Client:
		if t == nil {
			return false
		}
		*t = b.client
		return true
	}
	return false
}

// Ping checks that the SQS endpoint answers and accepts the credentials,
// with a ListQueues call. A missing ListQueues permission counts as
// success: the credentials were accepted.
func (b *Broker) Ping(ctx context.Context) error {
	if b.isClosed() {
		return fmt.Errorf("sqs: Ping: %w", mq.ErrClosed)
	}
	_, err := b.client.ListQueues(ctx, &sqs.ListQueuesInput{MaxResults: aws.Int32(1)})
	if err != nil && !isAccessDenied(err) {
		return fmt.Errorf("%w (endpoint %s)", wrapErr(ctx, "Ping", err), endpointOf(b.client))
	}
	return nil
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close stops every running Subscribe (they stop receiving, let running
// handlers finish, delete the messages handled successfully, make the
// others visible again at once, and return mq.ErrClosed), then waits for
// pending publishes to be sent. If ctx ends first, handlers' contexts and
// Close waits up to one more second for the SQS calls that settle their
// messages (so that unhandled messages become visible again at once), then
// cancels the broker's remaining SQS calls and returns ctx.Err() once
// everything has returned; messages whose settlement was cut short are
// redelivered after their visibility timeout. A client passed to New is
// not closed; a client made by Open has its idle connections closed.
// Close is idempotent: later calls return nil; every other method returns
// mq.ErrClosed afterwards.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	for _, s := range subs {
		s.stop(ctx, mq.ErrClosed)
	}
	b.queuesMu.Lock()
	for _, q := range b.queues {
		q.pub.close()
	}
	b.queuesMu.Unlock()

	done := make(chan struct{})
	go func() {
		b.work.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		// Handlers' contexts are canceled now. Give the calls that settle
		// their messages (making them visible again, deleting those
		// handled) a moment, so the messages come back at once rather
		// than after their visibility timeout; then cancel what remains.
		err = ctx.Err()
		grace := time.NewTimer(closeGrace)
		select {
		case <-done:
		case <-grace.C:
			b.cancelBase()
			<-done
		}
		grace.Stop()
	}
	b.cancelBase()
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("sqs: Close: %w", err)
	}
	return nil
}

// closeGrace is how long Close waits past its ctx for settlement calls.
const closeGrace = time.Second

// track registers a running Subscribe; it fails once Close has begun.
func (b *Broker) track(s *subscription) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("closed")
	}
	b.subs[s] = struct{}{}
	b.work.Add(1)
	return nil
}

func (b *Broker) untrack(s *subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
	b.work.Done()
}
