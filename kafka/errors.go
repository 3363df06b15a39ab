package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// wrapErr turns an error from kafka-go into one of the driver's: prefixed,
// context errors kept equal to ctx.Err(), Kafka error codes mapped to mq's
// sentinels, and transient failures marked retryable.
func wrapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) && isTimeoutOrCanceled(err) {
		// kafka-go sometimes reports a deadline as a network timeout.
		return fmt.Errorf("kafka: %s: %w (%v)", op, ctxErr, err)
	}
	return fmt.Errorf("kafka: %s: %w", op, classify(err))
}

func isTimeoutOrCanceled(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// classify maps one kafka-go error to mq's sentinels and marks transient
// ones retryable.
func classify(err error) error {
	var ke kafka.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrClosedPipe):
		return fmt.Errorf("%w (%v)", mq.ErrClosed, err)
	case errors.Is(err, kafka.MessageSizeTooLarge), errors.Is(err, kafka.RecordListTooLarge):
		return fmt.Errorf("%w: %v", mq.ErrMessageTooLarge, err)
	case errors.Is(err, protocol.ErrNoLeader):
		// Stale metadata during a leader election or broker restart.
		return driver.Retryable(err)
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return fmt.Errorf("%w: %v", mq.ErrNotFound, err)
	case errors.As(err, &ke):
		if ke.Temporary() {
			return driver.Retryable(err)
		}
		return err
	}
	return retryable(err)
}

// retryable marks network-level failures (refused or reset connections,
// timeouts, EOF) as retryable.
func retryable(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return driver.Retryable(err)
	}
	return err
}

// configProblem names a connection failure that only a change of
// configuration can fix (credentials, certificates), or returns "".
func configProblem(err error) string {
	var cv *tls.CertificateVerificationError
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return "SASL authentication failed (wrong user or password, or a mechanism the broker does not enable for it)"
	case errors.Is(err, kafka.UnsupportedSASLMechanism):
		return "the broker does not enable this SASL mechanism"
	case errors.As(err, &cv):
		return "TLS: the broker's certificate does not verify (check tls_ca_file and tls_server_name)"
	}
	return ""
}

// kafkaLogger adapts slog to kafka-go's Logger.
func kafkaLogger(l *slog.Logger, level slog.Level, prefix string) kafka.LoggerFunc {
	return func(format string, args ...any) {
		if l.Enabled(context.Background(), level) {
			l.Log(context.Background(), level, prefix+": "+fmt.Sprintf(format, args...))
		}
	}
}
