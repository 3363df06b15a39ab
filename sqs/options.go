package sqs

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Defaults for Options.
const (
	// DefaultWaitTime is the default Options.WaitTime: SQS's longest long
	// poll, which costs the fewest requests.
	DefaultWaitTime = 20 * time.Second
	// DefaultVisibilityTimeout is the default Options.VisibilityTimeout.
	DefaultVisibilityTimeout = 30 * time.Second
	// DefaultMaxReceiveCount is the default Options.MaxReceiveCount.
	DefaultMaxReceiveCount = 5
	// DefaultServerMaxBytes is the default Options.ServerMaxBytes: SQS's
	// limit since August 2025 (1 MiB), which ElasticMQ 1.7 enforces too.
	// Older SQS-compatible servers allow 256 KiB: set 262144 for them.
	DefaultServerMaxBytes = 1 << 20
	// DefaultSenders is the default Options.Senders.
	DefaultSenders = 16
	// MaxHeaders is the most headers a message may carry
	// (Capabilities.MaxHeaders). SQS allows ten message attributes; the
	// driver packs further headers into one, so the limit only bounds the
	// packing overhead reserved in headerReserve.
	MaxHeaders = 1000
	// MaxDelay is SQS's longest DelaySeconds.
	MaxDelay = 15 * time.Minute

	// headerReserve is what Capabilities.MaxMessageBytes keeps below
	// ServerMaxBytes for mq's own attributes (names, types, the body
	// placeholder) and the packing overhead of MaxHeaders headers, at
	// most 6 bytes each. Any message within MaxMessageBytes and MaxHeaders
	// therefore fits SQS's limit once encoded.
	headerReserve = 8 << 10
	// maxVisibility is SQS's longest visibility timeout (12 hours).
	maxVisibility = 12 * time.Hour
)

// Options configures a Broker made with New. The zero value is a sane
// default for every field: it uses the AWS configuration of the
// environment (the standard AWS config chain).
type Options struct {
	// Client is the SQS client the broker uses, which the caller
	// configures (region, credentials, endpoint, retries) and which the
	// broker does not close. Default nil: New builds one from the standard
	// AWS config chain (environment, shared config and credentials files,
	// SSO, web identity, ECS/EC2 roles), with Region, Endpoint and Profile
	// applied, a retryer without client-side rate limit, and an HTTP
	// transport of its own whose idle connections Close closes.
	Client *sqs.Client

	// Region is the AWS region of the client New builds. Default: the AWS
	// config chain's (AWS_REGION, the profile's region). Only without
	// Client.
	Region string

	// Endpoint is the endpoint URL of the client New builds, for local or
	// compatible servers, such as "http://127.0.0.1:9324" for ElasticMQ.
	// Default: AWS's. Only without Client.
	Endpoint string

	// Profile is the shared config profile of the client New builds.
	// Default: AWS_PROFILE, else "default". Only without Client.
	Profile string

	// QueuePrefix is prepended to every topic to form its queue name, for
	// example "prod-" makes topic "orders" use queue "prod-orders".
	// Default: none.
	QueuePrefix string

	// QueueOwner is the AWS account ID that owns the queues, when it is
	// not the caller's (cross-account access). Default: the caller's.
	QueueOwner string

	// Group is the group Subscribe uses without mq.Group. Default: none,
	// which joins whatever group the queue belongs to (see the package
	// documentation on groups).
	Group string

	// FIFO makes every topic a FIFO queue: the queue name gets the
	// ".fifo" suffix unless the topic already has it. With it,
	// Capabilities reports OrderingByKey and not DelayedDelivery. Without
	// it, only topics whose names end in ".fifo" are FIFO queues.
	FIFO bool

	// NoProvision makes the broker use existing queues only: a missing
	// queue is mq.ErrNotFound instead of being created. Provision still
	// creates queues. Default false: queues are created on first use.
	NoProvision bool

	// WaitTime is the long-poll time of each ReceiveMessage (SQS's
	// WaitTimeSeconds), from 0 to 20 seconds, in whole seconds. Default
	// DefaultWaitTime.
	WaitTime time.Duration

	// VisibilityTimeout is how long a held message stays invisible to
	// other consumers. A message is received with a shorter claim of 6
	// seconds (or VisibilityTimeout if shorter); once it has been held a
	// third of that, waiting for or running its handler, the driver
	// extends it to VisibilityTimeout, and again every third of
	// VisibilityTimeout, so a long handler is not redelivered mid-work. If
	// the process dies, SQS redelivers the message when its current
	// timeout ends: within 6 seconds of its receipt, or VisibilityTimeout
	// after the last extension. From 1 second to 12 hours. Default
	// DefaultVisibilityTimeout.
	VisibilityTimeout time.Duration

	// Receivers is the number of concurrent long-poll ReceiveMessage loops
	// per Subscribe. Default: one per ten of the subscription's
	// Concurrency, at least one.
	Receivers int

	// Senders bounds the concurrent SendMessageBatch calls per queue.
	// Concurrent Publish calls are grouped into batches of up to ten
	// messages while these calls are busy; a full batch goes out at once
	// while fewer than Senders calls are in flight. Default
	// DefaultSenders.
	Senders int

	// DeadLetterQueue, when set, gives each queue the driver creates an
	// SQS redrive policy that moves a message to this queue after
	// MaxReceiveCount receives. It is a queue name or ARN; "{topic}" in it
	// is replaced by the topic, so "{topic}-dlq" gives each queue its own.
	// The driver creates a named dead-letter queue if it is missing (a
	// FIFO queue's dead-letter queue must be FIFO too). Default: none.
	DeadLetterQueue string

	// MaxReceiveCount is the redrive policy's maxReceiveCount, from 1 to
	// 1000. Default DefaultMaxReceiveCount. Used only with DeadLetterQueue.
	MaxReceiveCount int

	// ServerMaxBytes is the largest message the SQS server accepts, as it
	// counts it (body plus attribute names, types and values).
	// Capabilities.MaxMessageBytes is 8 KiB less. Default
	// DefaultServerMaxBytes.
	ServerMaxBytes int

	// Logger receives the driver's logs. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.WaitTime == 0 {
		o.WaitTime = DefaultWaitTime
	}
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if o.Senders == 0 {
		o.Senders = DefaultSenders
	}
	if o.MaxReceiveCount == 0 {
		o.MaxReceiveCount = DefaultMaxReceiveCount
	}
	if o.ServerMaxBytes == 0 {
		o.ServerMaxBytes = DefaultServerMaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// validate checks the ranges SQS imposes.
func (o Options) validate() error {
	switch {
	case o.WaitTime < 0 || o.WaitTime > 20*time.Second:
		return fmt.Errorf("sqs: %w: WaitTime %v: want 0s to 20s", mq.ErrInvalidOption, o.WaitTime)
	case o.VisibilityTimeout < time.Second || o.VisibilityTimeout > maxVisibility:
		return fmt.Errorf("sqs: %w: VisibilityTimeout %v: want 1s to 12h", mq.ErrInvalidOption, o.VisibilityTimeout)
	case o.MaxReceiveCount < 1 || o.MaxReceiveCount > 1000:
		return fmt.Errorf("sqs: %w: MaxReceiveCount %d: want 1 to 1000", mq.ErrInvalidOption, o.MaxReceiveCount)
	case o.ServerMaxBytes < 2*headerReserve:
		return fmt.Errorf("sqs: %w: ServerMaxBytes %d: want at least %d", mq.ErrInvalidOption, o.ServerMaxBytes, 2*headerReserve)
	case o.Receivers < 0:
		return fmt.Errorf("sqs: %w: Receivers %d: want 0 (automatic) or more", mq.ErrInvalidOption, o.Receivers)
	case o.Senders < 1:
		return fmt.Errorf("sqs: %w: Senders %d: want 1 or more (0: DefaultSenders)", mq.ErrInvalidOption, o.Senders)
	case o.Client != nil && (o.Region != "" || o.Endpoint != "" || o.Profile != ""):
		return fmt.Errorf("sqs: %w: Region, Endpoint and Profile configure the client New builds; with a Client, configure that client instead", mq.ErrInvalidOption)
	}
	if problem := endpointProblem(o.Endpoint); problem != "" {
		return fmt.Errorf("sqs: %w: Endpoint %s", mq.ErrInvalidOption, problem)
	}
	if o.QueuePrefix != "" {
		if err := checkQueueName(o.QueuePrefix+"x", "QueuePrefix"); err != nil {
			return err
		}
	}
	return nil
}

// parseURL reads an sqs:// URL into Options; see the package
// documentation.
func parseURL(u *url.URL) (Options, error) {
	if u.User != nil {
		return Options{}, fmt.Errorf("sqs: %w: credentials do not belong in the URL; the driver reads them from the standard AWS config chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, instance role...)", mq.ErrInvalidURL)
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return Options{}, fmt.Errorf("sqs: %w: the URL has no host or path; write sqs://?region=us-east-1 (queue names come from topics, see the queue_prefix parameter)", mq.ErrInvalidURL)
	}
	p := driver.NewParams("sqs", u)
	o := readParams(p, DefaultServerMaxBytes)
	if err := p.Err(); err != nil {
		return Options{}, err
	}
	if problem := endpointProblem(o.Endpoint); problem != "" {
		return Options{}, fmt.Errorf("sqs: %w: parameter \"endpoint\" %s", mq.ErrInvalidURL, problem)
	}
	return o, nil
}

// readParams reads the parameters sqs:// and sns+sqs:// share into
// Options; the caller checks p.Err.
func readParams(p *driver.Params, serverMaxBytes int) Options {
	p.Renamed("prefix", "queue_prefix")
	p.Renamed("account", "queue_owner")
	p.Renamed("wait", "wait_time")
	p.Renamed("visibility", "visibility_timeout")
	p.Renamed("deadLetterQueue", "dead_letter_queue")
	p.Renamed("maxReceiveCount", "max_receive_count")
	p.Renamed("serverMaxBytes", "server_max_bytes")
	return Options{
		Region:            p.String("region", ""),
		Endpoint:          p.String("endpoint", ""),
		Profile:           p.String("profile", ""),
		QueuePrefix:       p.String("queue_prefix", ""),
		QueueOwner:        p.String("queue_owner", ""),
		Group:             p.Group(),
		FIFO:              p.Bool("fifo", false),
		NoProvision:       !p.Provision(),
		WaitTime:          p.Duration("wait_time", DefaultWaitTime, 0, 20*time.Second),
		VisibilityTimeout: p.Duration("visibility_timeout", DefaultVisibilityTimeout, time.Second, maxVisibility),
		Receivers:         p.Int("receivers", 0, 0, 1000),
		Senders:           p.Int("senders", DefaultSenders, 1, 1000),
		DeadLetterQueue:   p.String("dead_letter_queue", ""),
		MaxReceiveCount:   p.Int("max_receive_count", DefaultMaxReceiveCount, 1, 1000),
		ServerMaxBytes:    p.Int("server_max_bytes", serverMaxBytes, 2*headerReserve, 1<<30),
	}
}

// endpointProblem says what is wrong with an endpoint URL, or returns ""
// if it is empty or fine.
func endpointProblem(endpoint string) string {
	if endpoint == "" {
		return ""
	}
	eu, err := url.Parse(endpoint)
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
		return "must be an http:// or https:// URL with a host, such as http://127.0.0.1:9324"
	}
	if eu.User != nil {
		return "must not contain credentials"
	}
	return ""
}
