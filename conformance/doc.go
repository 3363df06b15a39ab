// Package conformance is the behaviour every mq driver must have, as a
// test suite. Each driver in this module runs it against a real broker,
// and users run it in their own CI against their own broker set-up (the
// broker version, configuration and URL parameters they deploy) or
// against a driver they write.
//
// # Running it
//
// Write one test that tells the suite how to open connections, then run
// it with go test -race:
//
//	package mybroker_test
//
//	import (
//		"context"
//		"os"
//		"testing"
//		"time"
//
//		"github.com/seedmq/mq"
//		"github.com/seedmq/mq/conformance"
//		_ "github.com/seedmq/mq/kafka"
//	)
//
//	func TestConformance(t *testing.T) {
//		url := os.Getenv("MQ_URL") // e.g. kafka://127.0.0.1:9092
//		if url == "" {
//			t.Skip("set MQ_URL to the broker under test")
//		}
//		conformance.Run(t, conformance.Harness{
//			Open: func(ctx context.Context) (mq.Broker, error) {
//				return mq.Open(ctx, url)
//			},
//			OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
//				// The same broker, set to use existing topics and
//				// groups only (see the driver's URL parameters).
//				return mq.Open(ctx, url+"?provision=false")
//			},
//			Timeout: 60 * time.Second, // consumer groups take seconds to form
//		})
//	}
//
// Harness.Open must return a new connection to one and the same broker on
// every call: the suite opens several to act as separate service
// instances (a producer, competing consumers, a consumer that restarts).
// Harness.OpenNoProvision opens a connection that never creates topics or
// groups; Harness.Restart restarts the broker process; Harness.Timeout
// bounds each wait for an expected delivery (default 10s) and
// Harness.Grace each watch for something that must not happen (default
// max(1s, Timeout/10)). Harness.URL, the URL Open uses, lets the suite
// try malformed parameters on it; Harness.Network (a TCP proxy in front
// of the broker, which the connections Open makes go through) lets it
// stall, resume and reset the network. Harness.LeakIgnore names process-wide goroutines
// of client libraries that the goroutine-leak check should ignore.
// Harness.PublishForeign publishes a message with the broker's own client,
// as a producer that does not use mq would; the foreign cases need it.
//
// Every case is a subtest of the test calling Run, so one case runs alone
// with go test -run 'TestConformance/nack-redelivers$'.
//
// # Cases
//
// The suite is an ordered list (Cases returns the names); each case uses a
// topic of its own, named "mqc-<case>-<random>" (lowercase letters, digits
// and '-', at most 60 bytes, valid on every broker), and provisions its
// topic and groups before publishing, so messages wait for groups that no
// subscriber has joined yet:
//
//   - round-trip: 100 messages arrive with ID, Key, Body and Header
//     intact, Topic, Group and Attempt 1 filled.
//   - publish-before-subscribe: messages published while no subscriber
//     runs, by a publisher that then closes, wait for the group.
//   - body-bytes: empty, NUL, invalid UTF-8, control characters, every byte
//     value and 64 KiB of random bytes arrive exactly.
//   - many-headers: Capabilities.MaxHeaders headers (32 when unlimited, at
//     most 32) with unicode and empty values round-trip.
//   - id-fill: Publish fills empty IDs with UUIDv7 values and keeps the
//     caller's; delivered IDs match.
//   - max-size: a message of exactly Capabilities.MaxMessageBytes (by
//     Message.Size) with a binary body is accepted and arrives intact.
//   - over-size: one byte more fails the whole Publish with
//     ErrMessageTooLarge, and nothing of the call is delivered.
//   - topic-isolation, many-topics: subscribers get only their topic's
//     messages, also with ten topics subscribed at once.
//   - batch-publish, large-batch: one Publish of 50 and of 1000 messages.
//   - concurrent-publishers: 8 goroutines on two connections, 25 messages
//     each; all arrive, none twice.
//   - nack-redelivers: handler errors redeliver with Attempt 2 and 3; no
//     delivery after the acknowledgement.
//   - nack-delay, retry-after: the Backoff and a RetryAfter delay are
//     honoured (needs NackDelay).
//   - failing-does-not-stall: with Concurrency(1), a message waiting to be
//     redelivered does not hold the handler slot: another key goes on.
//   - permanent-not-redelivered: a Permanent error is not redelivered.
//   - panic-redelivered: a handler panic is recovered and redelivered.
//   - acked-not-redelivered: acknowledged messages do not come back to the
//     next subscriber of the group on another connection.
//   - unacked-redelivered: a message whose handler was running when its
//     Subscribe was canceled comes back to the next subscriber with
//     Attempt of at least 2.
//   - close-deadline-redelivers: Close whose ctx ends first cancels the
//     handler, returns the ctx error, Subscribe returns ErrClosed and the
//     message comes back with Attempt of at least 2.
//   - close-drains: Close lets a running handler finish with its ctx
//     intact, its message is not redelivered, Subscribe returns ErrClosed,
//     and messages not yet handled reach the next subscriber.
//   - competing-consumers: three connections in one group split the
//     messages; each is acknowledged once and every consumer gets some.
//   - fan-out: three groups each get every message (needs FanOut).
//   - no-fan-out: a second group fails with ErrNotSupported (brokers
//     without FanOut).
//   - replay: a new group with StartAt(Earliest) reads messages published
//     before it existed (needs Replay).
//   - no-replay: StartAt(Earliest) fails with ErrNotSupported (brokers
//     without Replay).
//   - order-per-key: 4 keys x 25 messages under Concurrency(4) are handled
//     in publish order per key (needs OrderingByKey).
//   - order-per-key-redelivery: a message failing twice holds back the
//     later messages of its key (needs OrderingByKey).
//   - concurrency-limit: Concurrency(4) runs exactly four handlers at once.
//   - default-concurrency: without the option, one at a time.
//   - invalid-topic, invalid-message, invalid-options: bad input fails with
//     ErrInvalidTopic, ErrInvalidMessage or ErrInvalidOption, and a
//     rejected Publish sends nothing. Binary and empty header keys and
//     values are not bad input (see the foreign cases).
//   - key-limit, header-limits: a Key, header key or header table one
//     byte over Capabilities.MaxKeyBytes, MaxHeaderKeyBytes or
//     MaxHeaderBytes fails the whole Publish at once (ErrInvalidMessage;
//     ErrMessageTooLarge too for MaxHeaderBytes) naming the limit, nothing
//     of it is delivered, and messages at the limits arrive intact (skip
//     when the driver reports no limit).
//   - huge-concurrency: Concurrency(math.MaxInt), beyond
//     driver.MaxConcurrency or negative fails Subscribe at once with
//     ErrInvalidOption, without a panic; the connection still works and
//     closes.
//   - malformed-url: Harness.URL with "group=billing;x",
//     "no_such_param=%zz", "provision=false;x", a bad escape or a repeated
//     parameter appended fails mq.Open with ErrInvalidURL at once (needs
//     Harness.URL).
//   - network-stall-close: with Harness.Network stalled, a subscription
//     running and a Publish in flight, Close(ctx of 2s) returns within
//     its ctx plus driver.CloseGrace plus CloseSlack (1s), and so do
//     Publish and Subscribe (needs Harness.Network).
//   - network-stall-no-loss, network-reset-no-loss: while one publisher
//     publishes message by message (each Publish bounded by 5s and
//     returning within it plus CloseSlack), the network stalls for
//     StallFor (20s; a Subscribe canceled meanwhile returns within
//     driver.CloseGrace plus CloseSlack) or every connection is reset three times; every
//     confirmed message is delivered. The case logs confirmed, failed,
//     lost, duplicated and time to recover (needs Harness.Network).
//   - consumer-crash: a subprocess (the test binary run again for this
//     case alone, marked by CrashChildEnv, opening the broker through the
//     same Harness) subscribes with Concurrency 4 to 8 messages with
//     handlers that never return; CrashSettle (1s) after all four started
//     it is killed with SIGKILL. A new subscriber of the same group gets
//     every message, and those whose handlers had started come back with
//     Attempt 2 or more. The subprocess exits by itself when its stdin
//     ends or after three Timeouts. Skipped for brokers that are not
//     Persistent, such as memory, which lives in the test's process where
//     a subprocess cannot reach it.
//   - as: As on brokers and received messages refuses nil and foreign
//     targets (which native types a driver exposes is its own test's
//     business).
//   - delay-unsupported: Message.Delay fails with ErrNotSupported (brokers
//     without DelayedDelivery); delayed-delivery: a delayed message is not
//     delivered early (needs DelayedDelivery).
//   - ping, provision-idempotent.
//   - cancel-no-leak: canceling Subscribe's ctx returns context.Canceled
//     within 5s, and after Close no goroutine the connection started
//     remains (go.uber.org/goleak).
//   - subscribe-canceled-ctx, publish-ctx-done: a done ctx is reported as
//     itself (errors.Is(err, context.Canceled) and DeadlineExceeded).
//   - use-after-close, double-close, subscribe-close-race: ErrClosed after
//     Close; Close is idempotent and safe to race with Subscribe.
//   - resubscribe-while-publishing: five stop-and-subscribe rounds while
//     publishing lose nothing.
//   - no-provision-missing, no-provision-existing: with provisioning off a
//     missing topic is ErrNotFound on Publish and Subscribe, and existing
//     topology works (needs Harness.OpenNoProvision).
//   - broker-restart: 100 messages published before Harness.Restart (90
//     of them held in the broker by a handler that stops acknowledging
//     after ten) and 100 after it all arrive, with a subscriber running
//     throughout, resubscribed if its Subscribe fails (needs Persistent
//     and Harness.Restart).
//
// Cases registered by other files of this package (the middleware cases:
// dead-letter after max attempts, trace propagation) run after these,
// followed by the foreign cases, which check mq's interoperability rule:
// whatever a driver delivers, Publish on the same broker accepts
// unchanged, and it arrives byte-exact (keys, IDs and header keys and
// values may hold any bytes). They need Harness.PublishForeign:
//
//   - foreign-delivered: a message published by the broker's own client
//     with a binary key (Java's LongSerializer of 200) and a header value
//     that is not UTF-8 arrives with a non-empty ID, the native key as
//     Key, its body and headers byte for byte and a non-nil Header; nacked
//     once, it comes back with Attempt 2 and the same ID.
//   - foreign-republish: every delivered message (that foreign one, and
//     one of mq's with a binary ID, Key, header key and value, an empty
//     header key and an empty value), published unchanged by its handler
//     to another topic, is accepted and arrives there with the same ID,
//     Key, Body and Header.
//   - foreign-dead-letter: the foreign message under middleware.DeadLetter
//     with a handler returning mq.Permanent is dead-lettered once, as
//     received, and never redelivered from its source.
//
// # Capability gating
//
// Run reads Capabilities once and skips each case that needs a capability
// the driver reports false, with a message naming it, e.g. "skipped:
// needs capability FanOut, and the sqs driver reports Capabilities.FanOut
// false". Cases that check how a broker without a capability refuses it
// (no-fan-out, no-replay, delay-unsupported) skip on brokers that have
// it. A driver whose Capabilities overstate what it can do fails the
// gated cases; one that understates them skips checks it could pass and
// fails the refusal checks. max-size and over-size skip when
// MaxMessageBytes is 0 (no limit).
//
// # Stress mode
//
// MQ_CONFORMANCE_STRESS=N in the environment runs the whole suite N times,
// each round as a subtest "stress-1" ... "stress-N", to shake out races
// and rare orderings:
//
//	MQ_CONFORMANCE_STRESS=20 go test -race -run TestConformance ./kafka/
//
// # Waiting
//
// The suite never sleeps to let something happen: it waits for a
// condition with Harness.Timeout as the bound and reports what it was
// waiting for and what it had received. To show that something does not
// happen (an acknowledged message is not redelivered), it first waits for
// a positive signal, such as a later marker message arriving, and then
// watches for Harness.Grace.
package conformance
