package driver

import (
	"errors"
	"log/slog"
	"time"

	"github.com/seedmq/mq"
)

// Outcome is what a driver does with a delivery once the dispatcher has
// settled it. Every driver maps a handler's result to an Outcome with
// SubscribeConfig.Classify, so that nil, mq.Permanent, mq.RetryAfter and
// plain errors mean the same on every broker.
type Outcome int

const (
	// Ack: the handler returned nil. Acknowledge the message; it is
	// never delivered to this group again.
	Ack Outcome = iota + 1
	// Release: the handler did not run (ErrNotHandled). Make the message
	// available again at once, without counting a failed attempt.
	Release
	// Reject: the handler failed with mq.Permanent. Never redeliver the
	// message: hand it to the broker's own dead-letter target where one
	// is configured, else drop it and log it with LogDropped.
	Reject
	// Retry: the handler failed. Redeliver the message, with Attempt
	// increased, no earlier than the delay Classify returns.
	Retry
)

func (o Outcome) String() string {
	switch o {
	case Ack:
		return "ack"
	case Release:
		return "release"
	case Reject:
		return "reject"
	case Retry:
		return "retry"
	}
	return "Outcome(?)"
}

// Classify maps the result of a delivery's handler, err, to what the
// driver must do with the message, and for Retry the redelivery delay
// (see RedeliveryDelay). attempt is the delivery's Attempt.
func (c SubscribeConfig) Classify(attempt int, err error) (Outcome, time.Duration) {
	switch {
	case err == nil:
		return Ack, 0
	case errors.Is(err, ErrNotHandled):
		return Release, 0
	case mq.IsPermanent(err):
		return Reject, 0
	}
	return Retry, c.RedeliveryDelay(attempt, err)
}

// LogDropped logs, at error level and in the same words on every driver,
// that m was dropped after its handler failed permanently with err
// because no dead-letter target is configured. driverName starts the
// message ("kafka", "sqs").
func LogDropped(log *slog.Logger, driverName string, m *mq.Message, err error) {
	log.Error(driverName+": message dropped after a permanent handler error; no dead-letter target is configured (wrap the handler in middleware.DeadLetter, or configure the broker's own dead-letter target, to keep such messages)",
		"topic", m.Topic, "group", m.Group, "id", m.ID, "attempt", m.Attempt, "error", err)
}

// LogDeadLettered logs, at warning level and in the same words on every
// driver, that m went to the broker's own dead-letter target after its
// handler failed permanently with err.
func LogDeadLettered(log *slog.Logger, driverName string, m *mq.Message, target string, err error) {
	log.Warn(driverName+": message dead-lettered by the broker after a permanent handler error",
		"topic", m.Topic, "group", m.Group, "id", m.ID, "attempt", m.Attempt, "dead_letter", target, "error", err)
}
