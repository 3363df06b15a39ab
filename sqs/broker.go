package sqs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Scheme is the URL scheme this package registers with mq.Open.
const Scheme = "sqs"

// Broker is an mq.Broker backed by Amazon SQS (or a server that speaks its
// API, such as ElasticMQ). Each topic is a queue. Create it with New or
// with mq.Open and an sqs:// URL. All methods are safe for concurrent use.
type Broker struct {
	client *sqs.Client
	opts   Options
	caps   mq.Capabilities
	log    *slog.Logger
	// transport is the HTTP transport of a client New built, whose idle
	// connections Close closes; nil for Options.Client.
	transport *http.Transport

	// l tracks running Subscribe calls and send loops, and Close.
	l driver.Lifecycle
	// base is the parent of every call the broker makes on its own
	// behalf (batched sends, deletes, heartbeats). It is canceled only when
	// Close is done waiting.
	base       context.Context
	cancelBase context.CancelFunc

	queuesMu  sync.Mutex
	queues    map[string]*queue // by topic
	resolving chan struct{}     // a one-slot semaphore: one queue lookup at a time
}

// New returns a Broker configured by o. With o.Client it uses that
// client, which the caller configures (region, credentials, endpoint,
// retries) and which the Broker does not close, and makes no network
// call. Without it, New builds a client from the standard AWS config
// chain with o.Region, o.Endpoint and o.Profile, using ctx to load the
// configuration and find credentials (a missing region or credentials is
// an error). Either way, use Ping to check the connection. Invalid options
// are an error wrapping mq.ErrInvalidOption.
func New(ctx context.Context, o Options) (*Broker, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	client, transport := o.Client, (*http.Transport)(nil)
	if client == nil {
		var err error
		if client, transport, err = newClient(ctx, o); err != nil {
			return nil, err
		}
	}
	base, cancel := context.WithCancel(context.Background())
	b := &Broker{
		client:     client,
		opts:       o,
		log:        o.Logger,
		transport:  transport,
		base:       base,
		cancelBase: cancel,
		queues:     map[string]*queue{},
		resolving:  make(chan struct{}, 1),
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

func init() {
	mq.Register(Scheme, openURL)
}

// openURL opens a Broker from an sqs:// URL (see the package
// documentation) and checks the endpoint, region and credentials at once
// with Ping, so that a wrong configuration fails at start-up with a clear
// error.
func openURL(ctx context.Context, u *url.URL) (mq.Broker, error) {
	o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	b, err := New(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := b.Ping(ctx); err != nil {
		b.Close(context.WithoutCancel(ctx))
		return nil, err
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
	if err := b.l.Err(); err != nil {
		return fmt.Errorf("sqs: Ping: %w", err)
	}
	_, err := b.client.ListQueues(ctx, &sqs.ListQueuesInput{MaxResults: aws.Int32(1)})
	if err != nil && !isAccessDenied(err) {
		return fmt.Errorf("%w (endpoint %s)", wrapErr(ctx, "Ping", err), endpointOf(b.client))
	}
	return nil
}

// Close stops every running Subscribe (they stop receiving, let running
// handlers finish, delete the messages handled successfully, make the
// others visible again at once, and return mq.ErrClosed), then waits for
// pending publishes to be sent. If ctx ends first, handlers' contexts are
// canceled and Close waits up to driver.CloseGrace more for the SQS calls
// that settle their messages (so that unhandled messages become visible
// again at once), then cancels the broker's remaining SQS calls and
// returns ctx's error; messages whose settlement was cut short are
// redelivered after their visibility timeout. Options.Client is not
// closed; a client New built has its idle connections closed. Close is
// idempotent: later calls return nil; every other method returns
// mq.ErrClosed afterwards.
func (b *Broker) Close(ctx context.Context) error {
	return b.l.Close(ctx, func(context.Context) error {
		b.cancelBase()
		if b.transport != nil {
			b.transport.CloseIdleConnections()
		}
		return nil
	})
}
