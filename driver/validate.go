package driver

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/seedmq/mq"
)

// MaxNameBytes is the longest topic or group name any driver accepts.
// Drivers may allow less (SQS: 80 characters; Kafka: 249).
const MaxNameBytes = 249

// ValidateName checks a topic or group name against the rules every
// driver shares: non-empty, at most MaxNameBytes bytes, valid UTF-8, no
// white space or control characters. what names the argument in the error
// ("topic", "group"). Drivers add their broker's own rules.
func ValidateName(what, name string) error {
	var problem string
	switch {
	case name == "":
		problem = "must not be empty"
	case len(name) > MaxNameBytes:
		problem = fmt.Sprintf("is %d bytes, the limit is %d", len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		problem = "is not valid UTF-8"
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		problem = "must not contain white space or control characters"
	default:
		return nil
	}
	if what == "topic" {
		return fmt.Errorf("%w: %s %q %s", mq.ErrInvalidTopic, what, name, problem)
	}
	return fmt.Errorf("%w: %s %q %s", mq.ErrInvalidOption, what, name, problem)
}

// Limits bounds the messages PrepareMessages accepts. Zero fields mean no
// limit. LimitsOf derives them from a broker's Capabilities.
type Limits struct {
	MaxMessageBytes   int
	MaxHeaders        int
	MaxKeyBytes       int
	MaxHeaderKeyBytes int
	MaxHeaderBytes    int
	// AllowDelay permits a non-zero Message.Delay, up to MaxDelay when
	// MaxDelay is positive.
	AllowDelay bool
	MaxDelay   time.Duration
}

// LimitsOf returns the publish limits that c implies.
func LimitsOf(c mq.Capabilities) Limits {
	return Limits{
		MaxMessageBytes:   c.MaxMessageBytes,
		MaxHeaders:        c.MaxHeaders,
		MaxKeyBytes:       c.MaxKeyBytes,
		MaxHeaderKeyBytes: c.MaxHeaderKeyBytes,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		AllowDelay:        c.DelayedDelivery,
		MaxDelay:          c.MaxDelay,
	}
}

// PrepareMessages checks a Publish call's messages before anything is
// sent, and gives each message without an ID a new one (mq.NewID). ID,
// Key, header keys and header values may hold any bytes (see mq.Message:
// whatever a driver delivers, Publish accepts); drivers refuse what their
// broker cannot carry. It reports the first problem: an empty batch or nil
// message (mq.ErrInvalidMessage), a header key with the reserved prefix
// (mq.ErrInvalidMessage), a Delay the broker cannot honour
// (mq.ErrNotSupported) or one over its MaxDelay (mq.ErrInvalidMessage), a
// Key or header key over MaxKeyBytes or MaxHeaderKeyBytes
// (mq.ErrInvalidMessage), headers over MaxHeaderBytes
// (mq.ErrMessageTooLarge and mq.ErrInvalidMessage), or a message over the
// size limit (mq.ErrMessageTooLarge). Each error names the limit and the
// Capabilities field it comes from. Drivers call it at the start of
// Publish, then add their broker's own checks.
func PrepareMessages(msgs []*mq.Message, l Limits) error {
	if len(msgs) == 0 {
		return fmt.Errorf("%w: Publish needs at least one message", mq.ErrInvalidMessage)
	}
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("%w: message %d is nil", mq.ErrInvalidMessage, i)
		}
		if m.Delay < 0 {
			return fmt.Errorf("%w: message %d has negative Delay %v", mq.ErrInvalidMessage, i, m.Delay)
		}
		if m.Delay > 0 && !l.AllowDelay {
			return fmt.Errorf("%w: message %d has Delay %v, but this broker has no delayed delivery (Capabilities.DelayedDelivery)", mq.ErrNotSupported, i, m.Delay)
		}
		if l.MaxDelay > 0 && m.Delay > l.MaxDelay {
			return fmt.Errorf("%w: message %d has Delay %v, the limit is %v (Capabilities.MaxDelay)", mq.ErrInvalidMessage, i, m.Delay, l.MaxDelay)
		}
		if l.MaxKeyBytes > 0 && len(m.Key) > l.MaxKeyBytes {
			return fmt.Errorf("%w: message %d has a Key of %d bytes, the limit is %d (Capabilities.MaxKeyBytes)", mq.ErrInvalidMessage, i, len(m.Key), l.MaxKeyBytes)
		}
		if l.MaxHeaders > 0 && len(m.Header) > l.MaxHeaders {
			return fmt.Errorf("%w: message %d has %d headers, the limit is %d", mq.ErrInvalidMessage, i, len(m.Header), l.MaxHeaders)
		}
		hdrBytes := 0
		for k, v := range m.Header {
			hdrBytes += len(k) + len(v)
			switch {
			case l.MaxHeaderKeyBytes > 0 && len(k) > l.MaxHeaderKeyBytes:
				return fmt.Errorf("%w: message %d has a header key of %d bytes, the limit is %d (Capabilities.MaxHeaderKeyBytes)", mq.ErrInvalidMessage, i, len(k), l.MaxHeaderKeyBytes)
			case strings.HasPrefix(k, mq.ReservedHeaderPrefix):
				return fmt.Errorf("%w: message %d header %q: the prefix %q is reserved for drivers", mq.ErrInvalidMessage, i, k, mq.ReservedHeaderPrefix)
			}
		}
		if l.MaxHeaderBytes > 0 && hdrBytes > l.MaxHeaderBytes {
			return fmt.Errorf("%w: %w: message %d has %d bytes of header keys and values, the limit is %d (Capabilities.MaxHeaderBytes)", mq.ErrMessageTooLarge, mq.ErrInvalidMessage, i, hdrBytes, l.MaxHeaderBytes)
		}
		if m.ID == "" {
			m.ID = mq.NewID()
		}
		if l.MaxMessageBytes > 0 {
			if n := m.Size(); n > l.MaxMessageBytes {
				return fmt.Errorf("%w: message %d (id %q) is %d bytes (ID, Key, Body and Header), the limit is %d", mq.ErrMessageTooLarge, i, m.ID, n, l.MaxMessageBytes)
			}
		}
	}
	return nil
}
