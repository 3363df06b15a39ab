// Package middleware adds retry, dead-lettering, tracing, metrics, logging,
// timeouts and panic recovery to mq handlers and publishers, the same way on
// every driver.
//
// Handler middleware has the type mq.Middleware, func(mq.Handler)
// mq.Handler. Publisher middleware has the type PublisherMiddleware,
// func(PublishFunc) PublishFunc. Each middleware lives in its own file and
// takes an options struct whose zero value is a sane default (each field
// documents its own); only DeadLetterOptions.Publisher is required.
//
// # Order
//
// One rule: Chain(a, b, c) makes a the outermost, so a message passes
// through a, b and c, in that order, on its way to the handler, and the
// result passes back through c, b and a. ChainPublisher follows the same
// rule. The recommended handler stack, outermost first, is
//
//	middleware.Chain(
//		middleware.Tracing(tracingOpts),  // a process span per delivery, parent of all below
//		middleware.Metrics(metricsOpts),  // counts and times whole deliveries
//		middleware.Logging(loggingOpts),  // one line per failure or dead letter
//		middleware.DeadLetter(dlqOpts),   // acts on the error left after the retries
//		middleware.Retry(retryOpts),      // in-process retries of a failed run
//		middleware.Recover(recoverOpts),  // panics become errors the middleware above see
//		middleware.Timeout(timeoutOpts),  // a fresh deadline for each run
//	)
//
// Why this order: Tracing outermost puts retries, the dead-letter publish and
// everything the handler does inside one span whose parent is the
// producer's span. Metrics and Logging outside DeadLetter see whether a
// delivery was dead-lettered (DeadLetter tells them; it returns nil to
// acknowledge the original). DeadLetter outside Retry acts on the error
// that remains once the in-process retries gave up, and counts broker
// delivery attempts, not in-process runs. Recover inside Retry and
// DeadLetter turns a panic into an error they act on; the drivers recover
// panics too, but only after the panic has unwound through every
// middleware, so without Recover a message that always panics is never
// dead-lettered. Timeout innermost gives each run, retries included, its
// own deadline.
//
// On the publishing side, wrap the broker (or any Publisher) so Publish
// injects trace context and counts messages:
//
//	b = middleware.WrapBroker(b,
//		middleware.ChainPublisher(middleware.TracingPublisher(tracingOpts), middleware.MetricsPublisher(metricsOpts)),
//		handlerStack) // or nil, and wrap each handler yourself
//
// Wrappers implement mq.Unwrapper, so mq.Provision, mq.Ping and mq.As reach
// the driver through them, and a wrapped Broker is still an mq.Broker.
//
// # Delivery semantics
//
// None of the middleware acknowledges a message the handler did not
// handle. DeadLetter acknowledges a failed message only once the
// dead-letter publish returned nil, so a dead-letter outage leaves
// messages redelivering, never lost; a message can then reach the
// dead-letter topic more than once, with the same ID. Retry repeats the
// handler inside one delivery; a message still failing is redelivered by
// the broker with Message.Attempt increased, and DeadLetter counts those
// broker attempts, which hold across process restarts to the extent each
// driver documents. Redrive moves dead letters back the same way: publish
// first, acknowledge after.
//
// # Dead letters
//
// The default dead-letter topic is DeadLetterTopic(topic): topic + "-dlq"
// ("orders-dlq"; "orders-dlq.fifo" for the SQS FIFO queue "orders.fifo").
// The separator is '-', not '.', because SQS queue names cannot contain
// '.' and "-dlq" is valid on every driver. Set DeadLetterOptions.Topic for
// another naming, and DeadLetterOptions.Publisher to dead-letter to another
// broker. Provision the dead-letter topic and the group that will read it,
// as for any topic, or messages dead-lettered before a reader exists may
// not be kept (RabbitMQ drops messages to an exchange with no queue).
// The copy keeps ID, Key, Body and headers and adds HeaderTopic,
// HeaderGroup, HeaderAttempts, HeaderError (cut to MaxErrorBytes),
// HeaderReason and HeaderTime; keys starting with HeaderPrefix ("dlq-")
// are the middleware's own, as "mq-" is the drivers'. Redrive removes
// them and republishes each dead letter to its source topic with a new ID
// (the old one goes in HeaderOriginalID), because brokers that
// deduplicate by ID (SQS FIFO) would silently drop the old one;
// RedriveOptions.KeepID keeps it.
//
// # URL
//
// The middleware has no URL of its own: it wraps whatever mq.Open
// returned, and every option is a field of an options struct.
//
// # Capabilities
//
// Everything here works on every driver and needs no capability. What
// the middleware relies on is the drivers' contract: Message.Attempt grows
// on each redelivery (DeadLetter's count; each driver documents how exact
// it is across restarts), headers round-trip (trace context, dead-letter
// headers), and a nack redelivers. DeadLetter adds six headers and
// TracingPublisher one or two (traceparent, tracestate), which count
// against Capabilities.MaxHeaders. A wrapped Broker reports the wrapped
// one's Capabilities.
//
// # As
//
// The wrappers made by WrapPublisher and WrapBroker have no native client
// of their own; they implement mq.Unwrapper, so mq.As(wrapped, &target)
// reaches the driver's As, as mq.Provision and mq.Ping reach its
// Provisioner and Pinger. Message.As is untouched: handlers behind any
// middleware receive the driver's message.
//
// # Tracing and metrics
//
// Tracing and TracingPublisher use OpenTelemetry with the global or a given
// TracerProvider and propagator, W3C trace context in message headers
// when the propagator is propagation.TraceContext, and the messaging
// semantic conventions (semconv v1.43.0): a "send" producer span per
// single-message Publish, "create" spans linked from a "send" client span
// for batches, and a "process" consumer span per delivery, child of the
// producer's span. Metrics and MetricsPublisher record
// messaging.client.sent.messages, messaging.client.consumed.messages,
// messaging.process.duration, mq.messages.failed,
// mq.messages.dead_lettered and mq.messages.in_flight. With no SDK
// installed (no-op providers) each costs a few hundred nanoseconds per
// message; BenchmarkMiddleware measures every middleware.
//
// # Errors
//
// Middleware errors start with "middleware: " and wrap what caused them:
// a timed-out run satisfies errors.Is(err, context.DeadlineExceeded); a
// failed dead-letter publish wraps the publish error (not the handler's,
// which may be mq.Permanent: the message must be redelivered, not
// dropped). Retry returns the handler's own last error, also when the
// handler's ctx ended between runs. Recover's errors wrap the panic value
// when it is an error. DeadLetter panics at construction without a
// Publisher, a programming error.
package middleware
