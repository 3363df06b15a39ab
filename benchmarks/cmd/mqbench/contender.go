package main

import (
	"context"
	"strconv"
	"time"
)

// sentHeader carries the send time (Unix nanoseconds) in latency runs.
const sentHeader = "bench-sent"

// cell is one configuration a contender is measured in.
type cell struct {
	Size  int // body bytes
	Conc  int // publisher goroutines, and handler concurrency where the contender has one
	Batch int // messages per publish call (10 on SQS, whose best practice is SendMessageBatch; else 1)
}

// contender is one way of publishing and consuming messages on a broker:
// the raw client, mq, mq with middleware, Watermill...
type contender struct {
	// Name identifies the contender in results ("raw", "mq", ...).
	Name string
	// Role is "raw" for the reference the mq/raw ratios divide by, "mq"
	// for the contender they measure, and "" for the others.
	Role string
	// Note says how the contender is set up, for BENCHMARKS.md.
	Note string
	// NA, when set, says why the contender cannot run: it is reported as
	// "n/a: NA" and never started.
	NA string
	// Start creates a fresh topic and a running consumer that calls
	// recv for every message it handles (before acknowledging it, with
	// the send time from sentHeader, or 0), and returns the publishing
	// side.
	Start func(ctx context.Context, c cell, recv func(sent int64)) (run, error)
}

// ratio reports whether c is one of the contenders of the mq/raw ratios
// (the reference, raw+contract and mq), the reference of the
// mq/franz-go-consume ratios, or one of the Kafka producer's references
// (franz-go and sarama) and mq+snappy, which run the extra paired rounds of
// -ratio-rounds: the targets are read from them.
func (c contender) ratio() bool { return isRatio(c.Role, c.Name) }

// isRatio reports whether the contender of this role and name is one of
// the targets' ratios (see contender.ratio).
func isRatio(role, name string) bool {
	return role == "raw" || role == "mq" || name == "raw+contract" || name == franzConsumeName || name == franzName || name == saramaName || name == snappyName
}

// run is one contender set up on a fresh topic.
type run interface {
	// Publish sends len(bodies) messages in one call, stamping each with
	// sent (Unix nanoseconds) in sentHeader when sent is not 0. It
	// returns when the broker accepted them (as far as the contender
	// waits for that). It is safe for concurrent use.
	Publish(ctx context.Context, bodies [][]byte, sent int64) error
	// Close stops the consumer and releases everything Start made in
	// this process.
	Close(ctx context.Context) error
	// Delete removes from the broker what Start created there: the topic
	// and the queues and exchanges named after it. The harness calls it
	// after Close, outside the measured time. Without it every run left
	// its topic behind (about a thousand per make bench), and brokers
	// slow down with them: ElasticMQ restores every queue of its store
	// before it answers at start-up.
	Delete(ctx context.Context) error
}

// holder is a run whose messages can be held between Publish and the
// broker: the outbox contenders' "-drain" variants, which measure how
// fast the forwarder moves messages already waiting in the database. In
// a throughput run the harness calls Hold before publishing the timed
// messages and Release when all are published; the time runs from
// Release until the last message is consumed. Latency runs never hold.
type holder interface {
	Hold()
	Release()
}

// parseSent reads a sentHeader value; 0 when missing or malformed.
func parseSent(v string) int64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// formatSent is the sentHeader value for t.
func formatSent(ns int64) string { return strconv.FormatInt(ns, 10) }

// closeTimeout bounds each contender's Close.
const closeTimeout = 30 * time.Second

// deleteTimeout bounds each run's Delete.
const deleteTimeout = 30 * time.Second
