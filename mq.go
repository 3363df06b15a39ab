package mq

import (
	"context"
	"maps"
	"reflect"
	"time"

	"github.com/seedmq/mq/internal/hook"
)

// Message is one unit of data published to a topic and delivered to each
// group subscribed to it.
//
// The publisher sets ID, Key, Body, Header and optionally Delay. The
// subscriber also fills the delivery facts Topic, Group, Attempt and
// PublishTime. A Message holds no context and no acknowledgement state:
// the handler's return value is the acknowledgement.
//
// A Message must not be modified while a Publish that was given it runs.
//
// Whatever a driver delivers, Publish accepts: a received message,
// published unchanged to a topic of the same broker, succeeds and arrives
// with the same ID, Key, Body and Header, byte for byte. This holds for
// messages from producers that do not use mq as well (Java or librdkafka
// on Kafka, pika or any AMQP client on RabbitMQ, the AWS SDKs on SQS):
// ID, Key and header keys and values may hold any bytes, not only UTF-8,
// and where a broker cannot carry some bytes natively (SQS string
// attributes) the driver encodes them reversibly. Each driver's package
// documentation has an "Interoperability" section with a table of how
// these fields map to and from the broker's native fields. A message that
// a broker cannot carry at all (an oversized one, a header key past a
// broker's length limit) fails Publish with a clear error; nothing is
// dropped silently.
type Message struct {
	// ID identifies the message. Publish fills an empty ID with a new
	// UUIDv7 (time-ordered), visible to the caller afterwards. Brokers that
	// deduplicate (SQS FIFO) use it as the deduplication ID. A message from
	// a producer that does not use mq gets an ID the driver derives from
	// the broker's own identity for it (SQS MessageId, Kafka topic,
	// partition and offset), the same on every redelivery; each driver
	// documents its rule.
	ID string

	// Key is the ordering key. Messages with the same Key are handled in
	// publish order by brokers whose Capabilities include OrderingByKey.
	// It may be empty, and may hold any bytes (a Java producer's
	// LongSerializer key is eight binary bytes).
	Key string

	// Body is the payload, delivered byte for byte (binary, NUL bytes,
	// invalid UTF-8 and empty bodies included). A handler must not modify
	// a received Body in place: drivers may share it between deliveries
	// (Clone the message to get a copy of one's own).
	Body []byte

	// Header carries metadata. Keys and values are Go strings holding any
	// bytes: UTF-8 text usually, but binary values and keys from foreign
	// producers are kept as they are, not rejected. Keys starting with "mq-"
	// are reserved for drivers: Publish rejects them, and drivers remove
	// them on delivery. On delivery Header is never nil.
	//
	// Header keys are not limited to UTF-8 because the brokers do not
	// limit them: Kafka's and AMQP's wire formats carry them as bytes and
	// raw-protocol clients do not check them, so a stricter rule would
	// leave messages that a driver delivers but Publish refuses. SQS, whose
	// attribute names are restricted, carries other keys packed (see
	// package sqs).
	Header map[string]string

	// Delay asks the broker to deliver the message no earlier than Delay
	// after it was published. Brokers without the DelayedDelivery
	// capability reject a non-zero Delay with ErrNotSupported. Ignored on
	// received messages.
	Delay time.Duration

	// Topic is the topic the message was received from. Set on delivery.
	Topic string

	// Group is the group the message was delivered to. Set on delivery.
	Group string

	// Attempt is 1 on the first delivery to a group and grows by one on
	// each redelivery. Set on delivery. Each driver documents how exact it
	// is across process restarts.
	Attempt int

	// PublishTime is when the message was published, as the broker
	// records it: the time the broker accepted it where the broker keeps
	// that (SQS SentTimestamp, the memory broker, Kafka topics with
	// LogAppendTime), the producer's timestamp where that is all the
	// broker has (Kafka CreateTime, the AMQP timestamp property); otherwise
	// zero. Each driver documents which. Set on delivery.
	PublishTime time.Time

	raw any // driver's native delivery, see As
}

func init() {
	hook.SetMessageRaw = func(m, raw any) { m.(*Message).raw = raw }
}

// NewMessage returns a message with the given body and an empty header map.
func NewMessage(body []byte) *Message {
	return &Message{Body: body, Header: map[string]string{}}
}

// As sets *target to the driver's native representation of a received
// message (for example a kafka.Message or an amqp091.Delivery; each driver
// documents its types) and reports whether it could. target must be a
// non-nil pointer. A published message has no native representation.
func (m *Message) As(target any) bool {
	return assignTo(m.raw, target)
}

// Clone returns a deep copy of m: its Body and Header are copied, so the
// copy can be modified without touching m. The native delivery, if any, is
// shared.
func (m *Message) Clone() *Message {
	c := *m
	if m.Body != nil {
		c.Body = append(make([]byte, 0, len(m.Body)), m.Body...)
	}
	if m.Header != nil {
		c.Header = maps.Clone(m.Header)
	}
	return &c
}

// Size returns the number of bytes the message's ID, Key, Body and Header
// keys and values take. Drivers compare it with Capabilities.MaxMessageBytes.
func (m *Message) Size() int {
	n := len(m.ID) + len(m.Key) + len(m.Body)
	for k, v := range m.Header {
		n += len(k) + len(v)
	}
	return n
}

// assignTo stores v in *target when v's type is assignable to it.
func assignTo(v any, target any) bool {
	if l, ok := v.(hook.LazyNative); ok {
		v = l.LazyNative()
	}
	if v == nil || target == nil {
		return false
	}
	tv := reflect.ValueOf(target)
	if tv.Kind() != reflect.Pointer || tv.IsNil() {
		return false
	}
	vv := reflect.ValueOf(v)
	if !vv.Type().AssignableTo(tv.Elem().Type()) {
		return false
	}
	tv.Elem().Set(vv)
	return true
}

// Handler processes one delivered message.
//
// Returning nil acknowledges the message: it is not delivered to this group
// again. Returning an error negatively acknowledges it: it is redelivered
// to the same group later, with Attempt increased by one, after the
// subscription's Backoff delay (or the delay given by RetryAfter). Wrapping
// the error with Permanent says redelivery will not help (see Permanent).
// A panic in a handler is recovered, logged with its stack, and treated as
// an error.
//
// ctx is canceled when the subscription stops abruptly (Subscribe's ctx
// ends, or Close's ctx ends before handlers finish); a handler must return
// promptly then. Handlers may run concurrently, up to the Concurrency
// option.
type Handler func(ctx context.Context, m *Message) error

// Middleware wraps a Handler to add behaviour around it, such as retry,
// tracing or dead-lettering. See package middleware.
type Middleware func(Handler) Handler

// Publisher sends messages to topics.
type Publisher interface {
	// Publish sends msgs to topic and returns nil only when the broker has
	// durably accepted every one of them. It is safe for concurrent use;
	// concurrent calls are batched together by drivers that can.
	//
	// All messages are validated before any is sent: an empty batch, a nil
	// message, a bad header, a non-zero Delay on a broker without delayed
	// delivery or an oversized message fail the whole call with
	// ErrInvalidMessage, ErrNotSupported or ErrMessageTooLarge. If the
	// broker accepts some messages but not others, the error is a
	// *PublishError naming those not accepted. When ctx ends first the
	// error satisfies errors.Is(err, ctx.Err()), and the messages may or may
	// not have been accepted. After Close, Publish returns ErrClosed.
	//
	// Publish fills empty Message.ID fields with new IDs.
	Publish(ctx context.Context, topic string, msgs ...*Message) error

	// Close flushes pending publishes and releases the publisher's
	// resources, waiting no longer than ctx allows. It is idempotent: later
	// calls return nil; every other method returns ErrClosed afterwards.
	Close(ctx context.Context) error
}

// Subscriber receives messages from topics.
type Subscriber interface {
	// Subscribe delivers the messages of topic for the subscription's group
	// to h, and blocks until ctx ends (returning ctx.Err()), the subscriber
	// is closed (returning ErrClosed), or a failure that retrying cannot
	// fix (returning it). It is safe to call concurrently, any number of
	// times; subscriptions sharing a group share its messages (competing
	// consumers), and distinct groups each receive every message (fan-out,
	// where Capabilities.FanOut).
	//
	// Subscribe creates the group if it does not exist (unless the driver
	// is configured not to provision). A new group starts from the position
	// given by StartAt.
	//
	// When ctx ends, Subscribe stops fetching, cancels the contexts of
	// running handlers, waits for them to return, settles their messages
	// (ack for nil, nack otherwise) and returns. Messages fetched but not
	// yet handled are released to be redelivered.
	Subscribe(ctx context.Context, topic string, h Handler, opts ...SubscribeOption) error

	// Close stops every running Subscribe: they stop fetching, let running
	// handlers finish, send their acknowledgements, and return ErrClosed.
	// If ctx ends first, handler contexts are canceled and Close returns
	// ctx.Err() once they have returned. Close is idempotent: later calls
	// return nil.
	Close(ctx context.Context) error
}

// Broker is a connection to one message broker, as returned by Open. It is
// both a Publisher and a Subscriber; its Close shuts both down: running
// subscriptions drain, pending publishes are flushed, then connections
// close. All methods are safe for concurrent use.
//
// Drivers may implement further optional interfaces (Provisioner, Pinger)
// and an As method; use the package-level helpers Provision, Ping and As to
// reach them, as those follow Unwrap chains through wrappers.
type Broker interface {
	Publisher
	Subscriber

	// Capabilities reports what this broker, as configured, can do. It
	// does not block and does not change over the broker's life.
	Capabilities() Capabilities
}

// ReservedHeaderPrefix starts the header keys drivers use for their own
// bookkeeping. Publish rejects user headers with it, and drivers remove
// their own before delivery.
const ReservedHeaderPrefix = "mq-"
