// Package memory is mq's in-process broker, registered as the "mem" URL
// scheme. Services use it in unit tests and examples with the same code
// they run against Kafka, RabbitMQ or SQS in production.
//
// It is a faithful model, not a toy: a per-topic log, consumer groups
// that track each message until it is acknowledged, redelivery with
// attempt counts and delay, per-key ordering, competing consumers,
// fan-out, replay from the earliest message, an optional ack deadline and
// fault injection. It is exactly as strict as a real broker about
// at-least-once delivery, so a handler that is not idempotent, or a
// service that acknowledges too early, fails here first.
//
// # URL
//
//	mem://[NAME][?param=value&...]
//
// Brokers opened with the same NAME in one process share one server, as
// separate connections to a real broker do; an empty NAME gives a private
// server per Open. Parameters (unknown ones are errors):
//
//	group              default group for Subscribe without mq.Group (default none)
//	provision          create topics and groups on first use (default true);
//	                   false: only Provision creates them, else mq.ErrNotFound
//	max_message_bytes  largest message accepted (default 1048576)
//	max_headers        most headers per message (default 0: no limit; 10 mimics SQS)
//	max_key_bytes      longest Key in bytes (default 0: no limit; 255 mimics RabbitMQ)
//	max_header_key_bytes longest header key in bytes (default 0: no limit)
//	max_header_bytes   most bytes of header keys and values per message
//	                   (default 0: no limit)
//	ack_deadline       redeliver a message whose handler runs longer than this,
//	                   as SQS's visibility timeout does (default 0: never)
//	retain             newest messages each topic keeps for replay by new groups
//	                   (default 0: all of them; see Capabilities)
//
// Each parameter sets the Options field of the same name. The URL opener
// calls New, which code that builds Options itself calls directly:
//
//	b, err := memory.New(ctx, memory.Options{MaxHeaders: 10})
//
// # Delivery semantics
//
// Publish stores a copy of each message (the caller may reuse its buffers)
// and hands it to every group the topic has at that moment; a group made
// later sees it only with mq.StartAt(mq.Earliest). Within a group, messages
// are delivered in publish order to the group's subscriptions (competing
// consumers); a message with a Key is delivered only once every earlier
// message of that Key is acknowledged, so a failing message holds back its
// key but not others. A handler error redelivers the message after the
// subscription's Backoff (or mq.RetryAfter) with Attempt+1. A message
// taken but not handled when its subscription stops goes back to its group
// without counting as an attempt. Like RabbitMQ's prefetch, a subscription
// takes a few messages (up to its concurrency, at least 8, at most 16)
// beyond those its handlers are running, so competing consumers split a
// backlog in such batches; with an ack deadline it takes none ahead, so a
// message's deadline never runs while it waits. Disconnect returns the
// ones taken ahead too. A mq.Permanent error is logged at error
// level and the message dropped: this driver has no dead-letter target of
// its own; the dead-letter middleware provides one.
//
// # Capabilities
//
// FanOut, OrderingByKey, Replay, NackDelay and DelayedDelivery (up to 15
// minutes) are all true. Persistent is false: messages live as long as the
// process. Every published message stays in its topic's log for replay
// as long as its server exists (a named server for the rest of the
// process; an unnamed one until its Broker is no longer referenced), so a
// topic's memory grows with what is published to it: fine for tests and
// examples. A long-running process sets Options.Retain (retain=N in the
// URL): each topic then keeps only its newest N messages for replay, and
// an older message is freed once every group that had it acknowledged it.
//
// # Interoperability
//
// The memory broker has no producers but mq's, and keeps messages as they
// were published, so whatever it delivers, Publish accepts unchanged and
// it arrives byte-exact. Fields map thus (the left column is mq.Message):
//
//	field        Publish stores                  delivery gives
//	-----------  ------------------------------  -------------------------------
//	ID           as given (filled by Publish     as stored
//	             when empty), any bytes
//	Key          as given, any bytes             as stored
//	Body         a copy                          the stored bytes (shared by
//	                                             deliveries; do not modify)
//	Header       a copy, keys and values any     a copy of its own; an empty map
//	             bytes                           when published without one,
//	                                             never nil
//	Attempt      not stored                      1, plus one per redelivery
//	PublishTime  the time Publish stored it      as stored
//
// # As
//
// Broker.As accepts a **Broker (the broker itself, for fault injection
// after mq.Open). Received messages have no native form.
//
// # Fault injection
//
// Broker.InjectPublishErrors makes the next Publish calls fail;
// Broker.Disconnect drops the connection's unacknowledged messages back
// into their groups, so they are redelivered while the first handlers may
// still run and those handlers' acknowledgements are lost; the ack_deadline
// parameter (Options.AckDeadline) redelivers messages whose handlers are slow.
//
// # Errors
//
// New returns an error wrapping mq.ErrInvalidOption for invalid Options,
// and mq.Open one wrapping mq.ErrInvalidURL for a malformed or unknown
// parameter. Publish and Subscribe check their arguments first (the
// mq.Invalid errors for bad names, messages and options), then return
// mq.ErrClosed once Close has begun, and mq.ErrNotFound for missing
// topics or groups when provisioning is off; all are prefixed "memory: ".
package memory
