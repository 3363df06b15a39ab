package middleware

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seedmq/mq"
)

// Header keys DeadLetter sets on the copy it publishes to the dead-letter
// topic. They start with HeaderPrefix, which the middleware reserves: a
// redrive removes every header with that prefix. They do not start with
// mq.ReservedHeaderPrefix, which belongs to drivers.
const (
	// HeaderPrefix starts every header key DeadLetter adds.
	HeaderPrefix = "dlq-"
	// HeaderTopic is the topic the message was dead-lettered from.
	HeaderTopic = "dlq-topic"
	// HeaderGroup is the group whose handler gave up on it.
	HeaderGroup = "dlq-group"
	// HeaderAttempts is the delivery attempt (Message.Attempt) that failed
	// last, in decimal.
	HeaderAttempts = "dlq-attempts"
	// HeaderError is the last handler error's text, cut to
	// DeadLetterOptions.MaxErrorBytes.
	HeaderError = "dlq-error"
	// HeaderReason is "permanent" when the handler returned an mq.Permanent
	// error, "max-attempts" when the message ran out of attempts.
	HeaderReason = "dlq-reason"
	// HeaderTime is when the message was dead-lettered, in RFC 3339 with
	// nanoseconds, UTC.
	HeaderTime = "dlq-time"
)

// Reasons recorded in HeaderReason.
const (
	ReasonPermanent   = "permanent"
	ReasonMaxAttempts = "max-attempts"
)

// DeadLetterOptions configures DeadLetter.
type DeadLetterOptions struct {
	// Publisher receives the dead letters. Required. It may be the broker
	// the messages come from or another one.
	Publisher mq.Publisher

	// MaxAttempts is the delivery attempt (Message.Attempt, counted by the
	// broker, so it holds across process restarts) whose failure makes the
	// message a dead letter: the handler runs at most MaxAttempts times
	// per group. Default 5.
	MaxAttempts int

	// Topic names the dead-letter topic of a source topic. Default
	// DeadLetterTopic.
	Topic func(topic string) string

	// MaxErrorBytes bounds the HeaderError value; longer texts are cut at
	// a UTF-8 boundary and end in "...". Default 1024.
	MaxErrorBytes int

	// Now returns the time recorded in HeaderTime. Default time.Now.
	Now func() time.Time
}

// DeadLetterTopic is the default dead-letter topic name: topic + "-dlq",
// or, for an SQS FIFO queue name ending in ".fifo", the name with "-dlq"
// inserted before that suffix (a FIFO queue's dead letters must go to a
// FIFO queue). The suffix is "-dlq" rather than ".dlq" because SQS queue
// names may contain only letters, digits, '-' and '_', so "-dlq" is valid on
// every driver. Provision the dead-letter topic with the group that will
// read it before messages fail, as for any topic.
func DeadLetterTopic(topic string) string {
	if base, ok := strings.CutSuffix(topic, ".fifo"); ok {
		return base + "-dlq.fifo"
	}
	return topic + "-dlq"
}

// DeadLetter returns middleware that moves a message the handler cannot
// process to a dead-letter topic, so it stops being redelivered without
// being lost. When the handler fails on delivery attempt
// Message.Attempt >= MaxAttempts, or fails with an mq.Permanent error on
// any attempt, DeadLetter publishes a copy of the message (same ID, Key,
// Body and Header, plus the HeaderTopic, HeaderGroup, HeaderAttempts,
// HeaderError, HeaderReason and HeaderTime headers) to Topic(m.Topic) and
// returns nil, so the original is acknowledged, only once that Publish
// returned nil. If the publish fails, it returns an error naming both
// failures, the original is negatively acknowledged and redelivered, and
// the dead-lettering is tried again: nothing is lost. A message may then
// reach the dead-letter topic twice (at-least-once), with the same ID.
//
// Place DeadLetter outside Retry, so it sees the error left after the
// in-process retries. DeadLetter panics if Publisher is nil.
//
// Errors other than Permanent ones on earlier attempts are returned as
// they are, for the broker to redeliver, and so is any error once the
// handler's ctx has ended: a run cut short by shutdown says nothing about
// the message.
func DeadLetter(o DeadLetterOptions) mq.Middleware {
	if o.Publisher == nil {
		panic("middleware: DeadLetter needs DeadLetterOptions.Publisher")
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Topic == nil {
		o.Topic = DeadLetterTopic
	}
	if o.MaxErrorBytes <= 0 {
		o.MaxErrorBytes = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			err := next(ctx, m)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				// The subscription is stopping: the failure may be the
				// cancellation's, not the message's. Redeliver it.
				return err
			}
			reason := ReasonMaxAttempts
			switch {
			case mq.IsPermanent(err):
				reason = ReasonPermanent
			case m.Attempt < o.MaxAttempts:
				return err
			}
			topic := o.Topic(m.Topic)
			if perr := o.Publisher.Publish(ctx, topic, o.letter(m, err, reason)); perr != nil {
				return &deadLetterError{topic: topic, publish: perr, handler: err}
			}
			reportDeadLetter(ctx, topic, err)
			return nil
		}
	}
}

// letter returns the copy of m to publish to the dead-letter topic.
func (o *DeadLetterOptions) letter(m *mq.Message, err error, reason string) *mq.Message {
	h := make(map[string]string, len(m.Header)+6)
	for k, v := range m.Header {
		h[k] = v
	}
	h[HeaderTopic] = m.Topic
	h[HeaderGroup] = m.Group
	h[HeaderAttempts] = strconv.Itoa(m.Attempt)
	h[HeaderError] = truncate(err.Error(), o.MaxErrorBytes)
	h[HeaderReason] = reason
	h[HeaderTime] = o.Now().UTC().Format(time.RFC3339Nano)
	return &mq.Message{ID: m.ID, Key: m.Key, Body: m.Body, Header: h}
}

// truncate cuts s to at most n bytes at a UTF-8 boundary, marking the cut
// with "...", and replaces invalid UTF-8, so the header reads as text.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const mark = "..."
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark[:min(len(mark), n)]
}

// deadLetterError reports a dead-letter publish that failed; the message
// is negatively acknowledged so that it is not lost.
type deadLetterError struct {
	topic   string
	publish error
	handler error
}

func (e *deadLetterError) Error() string {
	return fmt.Sprintf("middleware: publishing to dead-letter topic %q failed, the message will be redelivered: %v (handler error: %v)", e.topic, e.publish, e.handler)
}

// Unwrap returns the publish error only: the handler's error may be
// Permanent, and a message whose dead-lettering failed must be redelivered,
// not dropped by a driver that honours Permanent.
func (e *deadLetterError) Unwrap() error { return e.publish }

// HandlerError returns the handler error that made the message a dead
// letter. Callers reach it with errors.As and an
// interface{ HandlerError() error } target.
func (e *deadLetterError) HandlerError() error { return e.handler }

// isDeadLetterFailure reports whether err is a failed dead-letter publish.
func isDeadLetterFailure(err error) bool {
	var d *deadLetterError
	return errors.As(err, &d)
}
