// Package mq gives Go services one Publisher/Subscriber API over message
// brokers: Apache Kafka, RabbitMQ, Amazon SQS and an in-process memory
// broker. A service picks its broker with one URL in its configuration;
// its code does not change.
//
//	import (
//		"github.com/seedmq/mq"
//		_ "github.com/seedmq/mq/kafka" // registers kafka://
//	)
//
//	b, err := mq.Open(ctx, os.Getenv("MQ_URL")) // kafka://k1:9092?group=billing
//	...
//	err = b.Publish(ctx, "orders", &mq.Message{Key: orderID, Body: body})
//	...
//	err = b.Subscribe(ctx, "orders", handle, mq.Group("billing"), mq.Concurrency(8))
//
// Subscribe blocks; a service runs each of its consumers with Start,
// which calls Subscribe in a goroutine of its own, and closes the broker
// on shutdown, which lets running handlers finish.
//
// # Vocabulary
//
// A producer publishes messages to a topic; the broker keeps them; a
// consumer subscribes to the topic in a group. Each group receives every
// message of the topic (fan-out); the subscribers of one group share its
// messages (competing consumers). A handler acknowledges a message by
// returning nil; an error asks for redelivery.
//
// # Delivery semantics
//
// Delivery is at least once. A Publish that returned nil was durably
// accepted by the broker, and each message in it is delivered to every
// group that existed when it was published, again and again, until a
// handler of that group returns nil for it: across subscriber restarts,
// crashes and (on brokers with Capabilities.Persistent) broker restarts.
// Handlers must therefore be idempotent. Message.Attempt tells a handler
// how often the message was delivered to its group.
//
// Messages with the same Key are handled in publish order where
// Capabilities.OrderingByKey holds, also when one fails and is
// redelivered: the key's later messages wait. Messages of different keys
// are handled in parallel up to the Concurrency option (default 1).
//
// A handler error redelivers the message after the subscription's Backoff
// (or the delay given with RetryAfter). An error wrapped with Permanent is
// not redelivered: see Permanent for where such messages go. A panic in a
// handler is recovered, logged with its stack, and counts as an error.
//
// Close is graceful: fetching stops, running handlers finish and their
// acknowledgements reach the broker, pending publishes are flushed. A
// message whose handler finished before Close is not delivered again; one
// not yet handled is delivered to the next subscriber.
//
// # URLs
//
// Open selects a driver by URL scheme; each driver registers its schemes
// when imported and documents its parameters and their defaults:
//
//	mem://[NAME]?...                         package memory
//	kafka://HOST:PORT[,HOST:PORT...]?...     package kafka
//	amqp://USER:PASS@HOST:PORT/VHOST?...     package rabbitmq (amqps:// for TLS)
//	sqs://...                                package sqs
//
// Unknown or malformed parameters are errors that name the parameter.
// Passwords never appear in errors or logs.
//
// # Capabilities
//
// Brokers differ: SQS has no fan-out, RabbitMQ cannot replay history,
// Kafka cannot delay a message. Broker.Capabilities reports what a broker
// can do, and a driver returns ErrNotSupported where a missing capability
// would be used; it never silently does something else. Call Require at
// start-up to fail fast when configuration swaps in a broker that lacks
// what the service needs.
//
// # Optional interfaces
//
// Drivers also implement Provisioner (create topics and groups ahead of
// time), Pinger (health checks) and an As method (the native client:
// *kafka.Writer, *amqp091.Connection, *sqs.Client, ...). Reach them with
// the package functions Provision, Ping and As, which follow Unwrap
// through wrappers such as tracing middleware. Message.As returns a
// received message's native form.
//
// # Errors
//
// Errors wrap the sentinels ErrClosed, ErrNotSupported,
// ErrMessageTooLarge, ErrNotFound and ErrInvalid (with ErrInvalidTopic,
// ErrInvalidMessage, ErrInvalidURL, ErrInvalidOption); test them with
// errors.Is. Context errors come back as they are. IsRetryable says
// whether repeating a failed call may help; a partial Publish failure is a
// *PublishError naming the messages not accepted.
//
// # Testing
//
// Use the memory driver (mem://) in unit tests: it is as strict about
// at-least-once delivery as a real broker, and can inject faults. Package
// conformance holds the test suite every driver passes; run it against
// your own broker set-up in CI.
package mq
