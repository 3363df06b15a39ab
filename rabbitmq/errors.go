package rabbitmq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// errClosed is mq.ErrClosed with the package prefix.
var errClosed = fmt.Errorf("rabbitmq: %w", mq.ErrClosed)

// errUnroutable is the failure of a message the exchange routed nowhere.
var errUnroutable = errors.New("no queue is bound to the topic's exchange (provision a group first, or set allow_unroutable)")

var maxSizeRE = regexp.MustCompile(`max size (\d+)`)

// channelLostOutcome says what to do with a message whose channel closed
// before it was confirmed. A channel error caused by one message (a
// missing exchange, an oversized body) fails only the messages it
// concerns; the rest are resent on a new channel.
func channelLostOutcome(cause *amqp.Error, m *outMsg) (outcome, error) {
	if cause != nil {
		switch cause.Code {
		case amqp.NotFound:
			if containsQuoted(cause.Reason, m.exchange) {
				return finalErr, fmt.Errorf("rabbitmq: exchange %q: %w: %s", m.exchange, mq.ErrNotFound, cause.Reason)
			}
		case amqp.PreconditionFailed:
			if sm := maxSizeRE.FindStringSubmatch(cause.Reason); sm != nil {
				if limit, err := strconv.Atoi(sm[1]); err == nil && len(m.pub.Body) > limit {
					return finalErr, fmt.Errorf("rabbitmq: %w: the broker refused a body of %d bytes: %s", mq.ErrMessageTooLarge, len(m.pub.Body), cause.Reason)
				}
			}
		case amqp.AccessRefused:
			if containsQuoted(cause.Reason, m.exchange) {
				return finalErr, fmt.Errorf("rabbitmq: exchange %q: access refused: %s", m.exchange, cause.Reason)
			}
		}
		return resend, driver.Retryable(fmt.Errorf("rabbitmq: channel closed before the broker confirmed: %w", cause))
	}
	return resend, driver.Retryable(errors.New("rabbitmq: connection lost before the broker confirmed"))
}

// containsQuoted reports whether reason names name in single quotes, as
// RabbitMQ's error texts do ("no exchange 'x' in vhost '/'").
func containsQuoted(reason, name string) bool {
	return strings.Contains(reason, "'"+name+"'")
}

// connectionLost reports whether err came from losing conn rather than
// from the broker refusing an operation.
func connectionLost(err error, conn *amqp.Connection) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return true
	}
	// Errors the client made up (such as amqp.ErrClosed) mean the
	// connection went away; the broker's own refusals have Server set.
	return conn.IsClosed() || !ae.Server
}

// declareError explains a failed declaration of what ("exchange",
// "queue") called name.
func declareError(what, name string, err error) error {
	var ae *amqp.Error
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, mq.ErrClosed) || !errors.As(err, &ae) {
		return err
	}
	switch ae.Code {
	case amqp.NotFound:
		return fmt.Errorf("rabbitmq: %s %q: %w (provisioning is off: create it, or enable provision)", what, name, mq.ErrNotFound)
	case amqp.PreconditionFailed:
		return fmt.Errorf("rabbitmq: %s %q exists with other settings (%s); configure the driver to match (exchange_type, queue_type, dead_letter_exchange) or use provision=false: %w", what, name, ae.Reason, mq.ErrInvalidOption)
	case amqp.AccessRefused:
		return fmt.Errorf("rabbitmq: %s %q: access refused: %s", what, name, ae.Reason)
	}
	return driver.Retryable(fmt.Errorf("rabbitmq: declare %s %q: %w", what, name, err))
}

// connectError explains a failed dial. Authentication and certificate
// failures are not retryable; network failures are.
func connectError(where string, err error) error {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return fmt.Errorf("rabbitmq: connect to %s: TLS: the broker's certificate does not verify (check tls_ca_file and tls_server_name): %w", where, err)
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused:
			if ae == amqp.ErrCredentials || ae.Reason == amqp.ErrCredentials.Reason {
				return fmt.Errorf("rabbitmq: connect to %s: authentication failed: the broker refused the user name or password", where)
			}
			return fmt.Errorf("rabbitmq: connect to %s: access refused: %s", where, ae.Reason)
		case amqp.NotAllowed:
			return fmt.Errorf("rabbitmq: connect to %s: not allowed: %s (does the vhost exist, and may the user use it?)", where, ae.Reason)
		}
		if ae == amqp.ErrSASL {
			return fmt.Errorf("rabbitmq: connect to %s: no SASL mechanism in common with the broker", where)
		}
		return driver.Retryable(fmt.Errorf("rabbitmq: connect to %s: %w", where, err))
	}
	return driver.Retryable(fmt.Errorf("rabbitmq: connect to %s: %w", where, err))
}
