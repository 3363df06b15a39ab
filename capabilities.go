package mq

import (
	"fmt"
	"strings"
	"time"
)

// Capabilities reports what a broker, as configured, can do. A driver that
// lacks a capability returns ErrNotSupported where it would be used; it
// never silently does something else.
type Capabilities struct {
	// Driver names the driver ("memory", "kafka", "rabbitmq", "sqs").
	Driver string
	// FanOut: distinct groups each receive every message of a topic.
	FanOut bool
	// OrderingByKey: messages with the same Key are handled in publish
	// order within a group, also across redeliveries.
	OrderingByKey bool
	// Replay: a new group can start at the oldest retained message
	// (StartAt(Earliest)).
	Replay bool
	// NackDelay: a failed message is not redelivered before its Backoff
	// or RetryAfter delay.
	NackDelay bool
	// DelayedDelivery: Message.Delay is honoured, up to MaxDelay.
	DelayedDelivery bool
	// MaxDelay is the longest Message.Delay accepted; zero when
	// DelayedDelivery is false.
	MaxDelay time.Duration
	// Persistent: accepted messages survive a broker restart.
	Persistent bool
	// MaxMessageBytes is the largest Message.Size the broker accepts.
	MaxMessageBytes int
	// MaxHeaders is the most headers a message may carry; 0 means no
	// limit below MaxMessageBytes.
	MaxHeaders int
	// MaxKeyBytes is the longest Message.Key, in bytes (RabbitMQ: 255,
	// the routing key being an AMQP short string); 0 means no limit
	// below MaxMessageBytes.
	MaxKeyBytes int
	// MaxHeaderKeyBytes is the longest header key, in bytes (RabbitMQ:
	// 255); 0 means no limit below MaxMessageBytes.
	MaxHeaderKeyBytes int
	// MaxHeaderBytes is the most bytes a message's header keys and
	// values may take together (the sum of len(key)+len(value)); 0 means
	// no limit below MaxMessageBytes.
	//
	// Publish checks every limit of Capabilities before it sends
	// anything: a Key or header key over its limit fails with
	// ErrInvalidMessage, headers over MaxHeaderBytes with an error
	// matching both ErrMessageTooLarge and ErrInvalidMessage, each naming
	// the limit.
	MaxHeaderBytes int
}

// Capability names one boolean field of Capabilities, for Require and for
// skipping conformance tests.
type Capability string

// The capabilities Require can check.
const (
	CapFanOut          Capability = "FanOut"
	CapOrderingByKey   Capability = "OrderingByKey"
	CapReplay          Capability = "Replay"
	CapNackDelay       Capability = "NackDelay"
	CapDelayedDelivery Capability = "DelayedDelivery"
	CapPersistent      Capability = "Persistent"
)

// Has reports whether c includes the capability named by name. Unknown
// names are reported as missing.
func (c Capabilities) Has(name Capability) bool {
	switch name {
	case CapFanOut:
		return c.FanOut
	case CapOrderingByKey:
		return c.OrderingByKey
	case CapReplay:
		return c.Replay
	case CapNackDelay:
		return c.NackDelay
	case CapDelayedDelivery:
		return c.DelayedDelivery
	case CapPersistent:
		return c.Persistent
	}
	return false
}

// Require returns nil if b has every capability in need, and otherwise an
// error wrapping ErrNotSupported that names the driver and each missing
// capability. Call it at start-up so that a configuration swapping in a
// broker that lacks what the service needs fails at once, not in
// production traffic.
func Require(b Broker, need ...Capability) error {
	c := b.Capabilities()
	var missing []string
	for _, n := range need {
		if !c.Has(n) {
			missing = append(missing, string(n))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the %s driver lacks %s, which this service requires", ErrNotSupported, c.Driver, strings.Join(missing, ", "))
}
