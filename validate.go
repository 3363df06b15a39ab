package mq

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
		return fmt.Errorf("%w: %s %q %s", ErrInvalidTopic, what, name, problem)
	}
	return fmt.Errorf("%w: %s %q %s", ErrInvalidOption, what, name, problem)
}

// Limits bounds the messages ValidateMessages accepts. Zero fields mean no
// limit.
type Limits struct {
	MaxMessageBytes int
	MaxHeaders      int
	// AllowDelay permits a non-zero Message.Delay, up to MaxDelay when
	// MaxDelay is positive.
	AllowDelay bool
	MaxDelay   time.Duration
}

// ValidateMessages checks a Publish call's messages before anything is
// sent, and fills empty IDs with NewID. It reports the first problem: an
// empty batch or nil message (ErrInvalidMessage), a bad header key or value
// (ErrInvalidMessage), a Delay the broker cannot honour (ErrNotSupported)
// or one over its MaxDelay (ErrInvalidMessage), or a message over the size
// limit (ErrMessageTooLarge). Drivers call it
// at the start of Publish.
func ValidateMessages(msgs []*Message, l Limits) error {
	if len(msgs) == 0 {
		return fmt.Errorf("%w: Publish needs at least one message", ErrInvalidMessage)
	}
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("%w: message %d is nil", ErrInvalidMessage, i)
		}
		if m.Delay < 0 {
			return fmt.Errorf("%w: message %d has negative Delay %v", ErrInvalidMessage, i, m.Delay)
		}
		if m.Delay > 0 && !l.AllowDelay {
			return fmt.Errorf("%w: message %d has Delay %v, but this broker has no delayed delivery (Capabilities.DelayedDelivery)", ErrNotSupported, i, m.Delay)
		}
		if l.MaxDelay > 0 && m.Delay > l.MaxDelay {
			return fmt.Errorf("%w: message %d has Delay %v, the limit is %v (Capabilities.MaxDelay)", ErrInvalidMessage, i, m.Delay, l.MaxDelay)
		}
		if !utf8.ValidString(m.ID) || !utf8.ValidString(m.Key) {
			return fmt.Errorf("%w: message %d: ID and Key must be valid UTF-8", ErrInvalidMessage, i)
		}
		if l.MaxHeaders > 0 && len(m.Header) > l.MaxHeaders {
			return fmt.Errorf("%w: message %d has %d headers, the limit is %d", ErrInvalidMessage, i, len(m.Header), l.MaxHeaders)
		}
		for k, v := range m.Header {
			switch {
			case k == "":
				return fmt.Errorf("%w: message %d has an empty header key", ErrInvalidMessage, i)
			case !utf8.ValidString(k) || !utf8.ValidString(v):
				return fmt.Errorf("%w: message %d header %q: keys and values must be valid UTF-8", ErrInvalidMessage, i, k)
			case strings.HasPrefix(k, ReservedHeaderPrefix):
				return fmt.Errorf("%w: message %d header %q: the prefix %q is reserved for drivers", ErrInvalidMessage, i, k, ReservedHeaderPrefix)
			}
		}
		if m.ID == "" {
			m.ID = NewID()
		}
		if l.MaxMessageBytes > 0 {
			if n := m.Size(); n > l.MaxMessageBytes {
				return fmt.Errorf("%w: message %d (id %q) is %d bytes (ID, Key, Body and Header), the limit is %d", ErrMessageTooLarge, i, m.ID, n, l.MaxMessageBytes)
			}
		}
	}
	return nil
}

// ReservedHeaderPrefix starts the header keys drivers use for their own
// bookkeeping. Publish rejects user headers with it, and drivers remove
// their own before delivery.
const ReservedHeaderPrefix = "mq-"
