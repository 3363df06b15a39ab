package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Scheme is the URL scheme mq.Open hands to this driver: kafka://.
const Scheme = "kafka"

func init() {
	mq.Register(Scheme, func(ctx context.Context, u *url.URL) (mq.Broker, error) {
		o, err := optionsFromURL(u)
		if err != nil {
			return nil, err
		}
		return New(ctx, o)
	})
}

// defaultMessageMaxBytes is Kafka's default message.max.bytes, assumed when
// the broker does not report its own.
const defaultMessageMaxBytes = 1048588

// Record overhead, in bytes, that Message.Size does not count: the record
// batch header, a record's own fields (lengths and deltas as varints), the
// driver's ID header key, and room for reservedHeaders user headers (two
// varint lengths each). See maxRecordBytes.
const (
	batchOverhead   = 61
	recordOverhead  = 5 + 1 + 10 + 5 + 5 + 5 + 5
	headerOverhead  = 5 + 5
	reservedHeaders = 64
	fixedOverhead   = batchOverhead + recordOverhead + headerOverhead + len(headerID)
)

// Broker is a connection to a Kafka cluster: an mq.Broker that also
// implements mq.Provisioner, mq.Pinger and As. Create it with New or
// mq.Open("kafka://..."). All methods are safe for concurrent use.
type Broker struct {
	cfg       Options // with defaults applied
	log       *slog.Logger
	dialer    *kafka.Dialer
	transport *kafka.Transport
	client    *kafka.Client
	writer    *kafka.Writer // for As only; Publish uses prod
	prod      *producer
	caps      mq.Capabilities
	maxRecord int // the broker's message.max.bytes

	topics sync.Map // topic name → struct{}: valid (checked before ensureTopic) and known to exist

	life driver.Lifecycle // running Subscribe calls and Close
}

// New connects to the cluster described by opts. Invalid options are an
// error wrapping mq.ErrInvalidOption. It dials the brokers at once
// (bounded by ctx) and reads message.max.bytes from them, so an
// unreachable cluster or bad credentials fail here, not on first use.
func New(ctx context.Context, opts Options) (*Broker, error) {
	cfg := opts.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg: cfg,
		log: cfg.Logger,
	}
	b.dialer = &kafka.Dialer{
		ClientID:      cfg.ClientID,
		Timeout:       cfg.DialTimeout,
		DualStack:     true,
		TLS:           cfg.TLS,
		SASLMechanism: cfg.SASL,
	}
	b.transport = &kafka.Transport{
		DialTimeout: cfg.DialTimeout,
		ClientID:    cfg.ClientID,
		TLS:         cfg.TLS,
		SASL:        cfg.SASL,
		Dial:        cfg.dial,
	}
	b.client = &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: b.transport}

	if err := b.reach(ctx); err != nil {
		b.transport.CloseIdleConnections()
		return nil, err
	}
	b.maxRecord = cfg.MaxMessageBytes
	if b.maxRecord == 0 {
		b.maxRecord = b.brokerMaxMessageBytes(ctx)
		if err := ctx.Err(); err != nil {
			b.transport.CloseIdleConnections()
			return nil, fmt.Errorf("kafka: read broker configuration: %w", err)
		}
	}
	if b.maxRecord <= fixedOverhead+headerOverhead*reservedHeaders {
		b.transport.CloseIdleConnections()
		return nil, fmt.Errorf("kafka: %w: MaxMessageBytes %d is too small", mq.ErrInvalidOption, b.maxRecord)
	}

	b.writer = &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...),
		// Keyed messages go where Java's default partitioner puts them
		// (murmur2 of the key); messages without a key go to a random
		// partition. See the package documentation.
		Balancer:     &kafka.Murmur2Balancer{},
		BatchSize:    cfg.BatchSize,
		BatchBytes:   int64(b.maxRecord - batchOverhead),
		BatchTimeout: cfg.BatchTimeout,
		RequiredAcks: cfg.Acks.required(),
		Compression:  cfg.Compression,
		Transport:    b.transport,
		ErrorLogger:  kafkaLogger(b.log, slog.LevelDebug, "kafka: writer"),
	}
	b.prod = newProducer(b)
	b.caps = mq.Capabilities{
		Driver:          Scheme,
		FanOut:          true,
		OrderingByKey:   true,
		Replay:          true,
		NackDelay:       true,
		DelayedDelivery: false,
		Persistent:      true,
		MaxMessageBytes: b.maxRecord - fixedOverhead - headerOverhead*reservedHeaders,
	}
	return b, nil
}

// reach dials the brokers until one answers, so that Open fails fast and
// clearly when none can be reached.
func (b *Broker) reach(ctx context.Context) error {
	var errs []error
	for _, addr := range b.cfg.Brokers {
		conn, err := b.dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			// Something answers TCP; check that it speaks Kafka.
			b.boundConn(ctx, conn)
			stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
			_, err = conn.ApiVersions()
			stop()
			_ = conn.Close()
			if err == nil {
				return nil
			}
			err = fmt.Errorf("%s does not answer as a Kafka broker: %w", addr, err)
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	err := errors.Join(errs...)
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	if problem := configProblem(err); problem != "" {
		// Retrying cannot help: not retryable.
		return fmt.Errorf("kafka: cannot connect to %s: %s: %w", strings.Join(b.cfg.Brokers, ","), problem, err)
	}
	return fmt.Errorf("kafka: cannot reach any broker of %s: %w", strings.Join(b.cfg.Brokers, ","), retryable(err))
}

// boundConn sets a deadline on conn for a request bounded by ctx: ctx's
// deadline plus a little, so that ctx (which closes conn when it ends)
// decides and the error is ctx's; without a deadline, DialTimeout.
func (b *Broker) boundConn(ctx context.Context, conn *kafka.Conn) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl.Add(100 * time.Millisecond))
		return
	}
	_ = conn.SetDeadline(time.Now().Add(b.cfg.DialTimeout))
}

// brokerMaxMessageBytes asks the cluster for message.max.bytes, falling
// back to Kafka's default when it cannot tell.
func (b *Broker) brokerMaxMessageBytes(ctx context.Context) int {
	md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil || len(md.Brokers) == 0 {
		b.log.Debug("kafka: cannot read broker metadata; assuming message.max.bytes is Kafka's default", "error", err)
		return defaultMessageMaxBytes
	}
	res, err := b.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeBroker,
			ResourceName: strconv.Itoa(md.Brokers[0].ID),
			ConfigNames:  []string{"message.max.bytes"},
		}},
	})
	if err != nil {
		b.log.Debug("kafka: cannot read message.max.bytes; assuming Kafka's default", "error", err)
		return defaultMessageMaxBytes
	}
	for _, r := range res.Resources {
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "message.max.bytes" {
				if n, err := strconv.Atoi(e.ConfigValue); err == nil && n > 0 {
					return n
				}
			}
		}
	}
	return defaultMessageMaxBytes
}

// Capabilities reports what the driver can do; see the package
// documentation. It does not block.
func (b *Broker) Capabilities() mq.Capabilities { return b.caps }

// String describes the broker without credentials.
func (b *Broker) String() string {
	return "kafka://" + strings.Join(b.cfg.Brokers, ",")
}

// As sets target to a native client: *kafka.Writer (a Writer with the
// publisher's settings; Publish itself does not use it),
// *kafka.Client (admin requests), *kafka.Transport and *kafka.Dialer (the
// connection settings; consumers use transports of their own with them).
// It reports whether target's type was one of those.
func (b *Broker) As(target any) bool {
	switch t := target.(type) {
	case **kafka.Writer:
		*t = b.writer
	case **kafka.Client:
		*t = b.client
	case **kafka.Transport:
		*t = b.transport
	case **kafka.Dialer:
		*t = b.dialer
	default:
		return false
	}
	return true
}

// Ping asks a broker for its API versions, returning nil if one answers
// within ctx.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.life.Err(); err != nil {
		return fmt.Errorf("kafka: ping: %w", err)
	}
	if _, err := b.client.ApiVersions(ctx, &kafka.ApiVersionsRequest{}); err != nil {
		return wrapErr(ctx, "ping", err)
	}
	return nil
}

// Close stops every running Subscribe (they stop fetching, let running
// handlers finish, commit the offsets of handled messages, leave their
// groups and return mq.ErrClosed), then flushes pending publishes and
// closes connections. If ctx ends first, handlers' contexts are canceled;
// Close waits up to driver.CloseGrace more for the subscriptions to
// return, then closes the connections and returns ctx.Err(). Close is
// idempotent: later calls return nil, and every other method returns
// mq.ErrClosed.
func (b *Broker) Close(ctx context.Context) error {
	return b.life.Close(ctx, func(ctx context.Context) error {
		b.prod.close(ctx)
		err := b.writer.Close()
		b.transport.CloseIdleConnections()
		if err != nil {
			return fmt.Errorf("kafka: close: %w", err)
		}
		return nil
	})
}

// groupID returns the Kafka consumer group ID of mq group on topic:
// "<group>.<topic>", so that each (topic, group) pair is a consumer group
// of its own, or group itself with Options.ExactGroupID.
func (b *Broker) groupID(group, topic string) string {
	if b.cfg.ExactGroupID {
		return group
	}
	return group + "." + topic
}

// validateTopic applies Kafka's topic name rules on top of mq's.
func validateTopic(topic string) error {
	if err := driver.ValidateName("topic", topic); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if topic == "." || topic == ".." {
		return fmt.Errorf("kafka: %w: topic %q is not allowed by Kafka", mq.ErrInvalidTopic, topic)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("kafka: %w: topic %q: Kafka topic names use only ASCII letters, digits, '.', '_' and '-'", mq.ErrInvalidTopic, topic)
		}
	}
	return nil
}
