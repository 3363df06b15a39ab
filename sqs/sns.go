package sqs

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// SNSScheme is the URL scheme of SNS fan-out (SNSBroker), which this
// package registers with mq.Open beside Scheme.
const SNSScheme = "sns+sqs"

// Defaults for SNSOptions.
const (
	// DefaultSNSMaxBytes is the default ServerMaxBytes of an SNSBroker:
	// SNS's limit on a published message (body plus attribute names,
	// types and values), 256 KiB, which is also its limit on a whole
	// PublishBatch call.
	DefaultSNSMaxBytes = 256 << 10
	// DefaultQueueName is the default SNSOptions.QueueName.
	DefaultQueueName = "{topic}-{group}"
)

// SNSOptions configures an SNSBroker made with NewSNS. The zero value is
// a sane default for every field.
type SNSOptions struct {
	// Options configures the SQS side, which receives and settles
	// messages exactly as an sqs:// Broker does, and what both sides
	// share: Region, Endpoint and Profile apply to the SNS client too;
	// QueuePrefix prefixes each group's queue; FIFO makes every topic a
	// FIFO topic (and its queues FIFO queues); NoProvision uses existing
	// topics, queues and subscriptions only; DeadLetterQueue may use
	// "{group}" as well as "{topic}". ServerMaxBytes is SNS's limit here,
	// default DefaultSNSMaxBytes. With Options.Client, SNSClient is
	// required.
	Options

	// SNSClient is the SNS client, which the caller configures and the
	// broker does not close. Default nil: built from the same AWS
	// configuration as the SQS client (Options.Client must be nil then).
	SNSClient *sns.Client

	// TopicPrefix is prepended to every topic to form its SNS topic name.
	// Default: none.
	TopicPrefix string

	// QueueName names the SQS queue of a group: "{topic}" is replaced by
	// the topic (without ".fifo") and "{group}" by the group, and
	// Options.QueuePrefix is prepended (".fifo" appended for FIFO
	// topics). It must contain both. Default DefaultQueueName, so group
	// "billing" of topic "orders" reads queue "orders-billing".
	QueueName string
}

// SNSBroker is an mq.Broker for SNS fan-out: each topic is an SNS topic,
// and each group an SQS queue subscribed to it with raw message delivery.
// Publish sends with SNS PublishBatch; Subscribe receives from the group's
// queue with the same code as Broker (see the package documentation,
// "SNS fan-out"). Create it with NewSNS or with mq.Open and an sns+sqs://
// URL. All methods are safe for concurrent use.
type SNSBroker struct {
	b    *Broker // the SQS side: client, lifecycle, subscriptions
	sns  *sns.Client
	opts SNSOptions
	caps mq.Capabilities

	mu        sync.Mutex
	topics    map[string]*snsTopic // by topic
	groups    map[[2]string]*groupQueue
	resolving chan struct{} // a one-slot semaphore: one lookup at a time
}

// NewSNS returns an SNSBroker configured by o. With o.Client and
// o.SNSClient it uses those clients and makes no network call; without
// either, it builds both from the standard AWS config chain with
// o.Region, o.Endpoint and o.Profile (a missing region or credentials is
// an error). Invalid options are an error wrapping mq.ErrInvalidOption.
func NewSNS(ctx context.Context, o SNSOptions) (*SNSBroker, error) {
	if o.ServerMaxBytes == 0 {
		o.ServerMaxBytes = DefaultSNSMaxBytes
	}
	if o.QueueName == "" {
		o.QueueName = DefaultQueueName
	}
	if !strings.Contains(o.QueueName, "{topic}") || !strings.Contains(o.QueueName, "{group}") {
		return nil, fmt.Errorf("sqs: %w: QueueName %q must contain {topic} and {group}: each group of each topic needs a queue of its own", mq.ErrInvalidOption, o.QueueName)
	}
	if (o.Client == nil) != (o.SNSClient == nil) {
		return nil, fmt.Errorf("sqs: %w: give both Client and SNSClient, or neither", mq.ErrInvalidOption)
	}
	if o.TopicPrefix != "" {
		if err := checkTopicName(o.TopicPrefix+"x", "TopicPrefix"); err != nil {
			return nil, err
		}
	}
	inner := o.Options
	var transport *http.Transport
	snsClient := o.SNSClient
	if inner.Client == nil {
		inner = inner.withDefaults()
		if err := inner.validate(); err != nil {
			return nil, err
		}
		cfg, t, err := loadConfig(ctx, inner)
		if err != nil {
			return nil, err
		}
		transport = t
		endpoint := inner.Endpoint
		inner.Client = sqs.NewFromConfig(cfg, func(so *sqs.Options) {
			if endpoint != "" {
				so.BaseEndpoint = aws.String(endpoint)
			}
		})
		snsClient = sns.NewFromConfig(cfg, func(so *sns.Options) {
			if endpoint != "" {
				so.BaseEndpoint = aws.String(endpoint)
			}
		})
		inner.Region, inner.Endpoint, inner.Profile = "", "", ""
	}
	b, err := New(ctx, inner)
	if err != nil {
		return nil, err
	}
	b.transport = transport
	s := &SNSBroker{
		b:         b,
		sns:       snsClient,
		opts:      o,
		topics:    map[string]*snsTopic{},
		groups:    map[[2]string]*groupQueue{},
		resolving: make(chan struct{}, 1),
	}
	s.caps = mq.Capabilities{
		Driver:          SNSScheme,
		FanOut:          true,
		OrderingByKey:   o.FIFO,
		Replay:          false,
		NackDelay:       true,
		DelayedDelivery: false, // SNS has no per-message delay
		Persistent:      true,
		MaxMessageBytes: b.opts.ServerMaxBytes - headerReserve,
		MaxHeaders:      MaxHeaders,
	}
	return s, nil
}

func init() {
	mq.Register(SNSScheme, openSNSURL)
}

// openSNSURL opens an SNSBroker from an sns+sqs:// URL and checks the
// endpoints, region and credentials at once with Ping.
func openSNSURL(ctx context.Context, u *url.URL) (mq.Broker, error) {
	o, err := parseSNSURL(u)
	if err != nil {
		return nil, err
	}
	s, err := NewSNS(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// parseSNSURL reads an sns+sqs:// URL: the parameters of sqs:// plus
// topic_prefix and queue_name.
func parseSNSURL(u *url.URL) (SNSOptions, error) {
	if u.User != nil {
		return SNSOptions{}, fmt.Errorf("sqs: %w: credentials do not belong in the URL; the driver reads them from the standard AWS config chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, instance role...)", mq.ErrInvalidURL)
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return SNSOptions{}, fmt.Errorf("sqs: %w: the URL has no host or path; write sns+sqs://?region=us-east-1 (topic and queue names come from topics and groups, see topic_prefix and queue_name)", mq.ErrInvalidURL)
	}
	p := driver.NewParams(SNSScheme, u)
	o := SNSOptions{
		Options:     readParams(p, DefaultSNSMaxBytes),
		TopicPrefix: p.String("topic_prefix", ""),
		QueueName:   p.String("queue_name", DefaultQueueName),
	}
	if err := p.Err(); err != nil {
		return SNSOptions{}, err
	}
	if problem := endpointProblem(o.Endpoint); problem != "" {
		return SNSOptions{}, fmt.Errorf("sqs: %w: parameter \"endpoint\" %s", mq.ErrInvalidURL, problem)
	}
	return o, nil
}

// Capabilities reports what the broker can do: FanOut is true (each
// group is a queue of its own); the rest is as for sqs://, except
// DelayedDelivery, false because SNS has no per-message delay. It does
// not block.
func (s *SNSBroker) Capabilities() mq.Capabilities { return s.caps }

// String describes the broker without credentials.
func (s *SNSBroker) String() string {
	return "sns+sqs broker (" + endpointOf(s.b.client) + ")"
}

// As sets *target to one of the broker's native clients: target may be a
// **sns.Client or a **sqs.Client. It reports whether it could.
func (s *SNSBroker) As(target any) bool {
	switch t := target.(type) {
	case **sns.Client:
		if t == nil {
			return false
		}
		*t = s.sns
		return true
	}
	return s.b.As(target)
}

// Ping checks that both endpoints answer and accept the credentials, with
// a ListQueues and a ListTopics call. A missing permission for either
// counts as success: the credentials were accepted.
func (s *SNSBroker) Ping(ctx context.Context) error {
	if err := s.b.Ping(ctx); err != nil {
		return err
	}
	if _, err := s.sns.ListTopics(ctx, &sns.ListTopicsInput{}); err != nil && !isAccessDenied(err) {
		return fmt.Errorf("%w (SNS endpoint %s)", wrapSNSErr(ctx, "Ping", err), snsEndpointOf(s.sns))
	}
	return nil
}

// Close stops every running Subscribe and waits for pending publishes,
// as Broker.Close does. Clients given in the options are not closed; one
// New built has its idle connections closed. Close is idempotent: later
// calls return nil; every other method returns mq.ErrClosed afterwards.
func (s *SNSBroker) Close(ctx context.Context) error {
	return s.b.Close(ctx)
}

// snsEndpointOf describes where c sends requests, for error messages.
func snsEndpointOf(c *sns.Client) string {
	o := c.Options()
	if o.BaseEndpoint != nil {
		return *o.BaseEndpoint
	}
	return "SNS in region " + strings.TrimSpace(o.Region)
}

// isSNSNotFound reports whether SNS says a topic or subscription does not
// exist.
func isSNSNotFound(err error) bool {
	switch errorCode(err) {
	case "NotFound", "NotFoundException":
		return true
	}
	return false
}

// wrapSNSErr is wrapErr for SNS calls: a missing topic or subscription
// is mq.ErrNotFound, SNS's throttling is retryable.
func wrapSNSErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case isSNSNotFound(err):
		return fmt.Errorf("sqs: %s: %w: %v", op, mq.ErrNotFound, err)
	case errorCode(err) == "Throttled" || errorCode(err) == "KMSThrottling":
		return driver.Retryable(fmt.Errorf("sqs: %s: %w", op, err))
	}
	return wrapErr(ctx, op, err)
}
