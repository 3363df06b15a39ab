// Package rabbitmq is the RabbitMQ driver of mq, built on
// github.com/rabbitmq/amqp091-go. Importing it registers the amqp and
// amqps URL schemes with mq.Open:
//
//	import _ "github.com/seedmq/mq/rabbitmq"
//
//	b, err := mq.Open(ctx, "amqp://user:pass@rabbit:5672/prod?group=billing")
//
// New does the same from an Options struct, which also takes amqp091-go's
// own Config (TLS, SASL, heartbeat, dialer, client properties). The
// schemes are the constants Scheme ("amqp") and SchemeTLS ("amqps").
//
// A topic is a durable exchange (fanout by default) named after the topic.
// A group is a durable queue named "<topic>.<group>", bound to it. Each
// Broker holds two connections, one for publishing and one for consuming,
// so that flow control on publishers never delays acknowledgements.
//
// # URL
//
//	amqp://user:password@host:port/vhost?param=value&...
//	amqps://user:password@host:port/vhost?param=value&...
//
// User and password default to guest:guest, the port to 5672 (amqps:
// 5671), the vhost to "/" (write "/" as %2F in the path). Each parameter
// sets the Options field of the same name in snake_case (heartbeat sets
// Config.Heartbeat; the tls_* parameters build Config.TLSClientConfig);
// fields set in Options win over the URL. Unknown or malformed parameters
// are errors naming them; cacertfile, certfile, keyfile and server_name
// are errors naming the tls_* parameter to write instead. Parameters:
//
//   - group: the default consumer group, for Subscribe calls without
//     mq.Group. Default none: Subscribe must name one.
//   - queue_type: quorum or classic, the type of the queues the driver
//     declares. Default quorum (replicated; counts deliveries, which makes
//     Message.Attempt exact).
//   - exchange_type: fanout, topic or direct, the kind of the exchanges the
//     driver declares. Default fanout. Messages are published with
//     Message.Key as routing key.
//   - binding_key: the key binding group queues to the topic exchange.
//     Default "#" for topic exchanges, "" otherwise.
//   - prefetch: the consumer prefetch count per subscription, 0 to 65535.
//     Default 0: twice the subscription's Concurrency.
//   - provision: false uses existing topology only: nothing is declared;
//     exchanges and queues are checked passively, and a missing one is
//     mq.ErrNotFound. Default true.
//   - dead_letter_exchange: declared as the group queues'
//     x-dead-letter-exchange; mq.Permanent failures go there. Default none.
//   - queue_expires: a duration (e.g. 24h) after which RabbitMQ deletes a
//     group queue that has had no consumer, messages included (x-expires).
//     Default none.
//   - allow_unroutable: true makes Publish succeed for messages no queue
//     receives (see Delivery semantics). Default false.
//   - publish_channels: confirm-mode channels shared by Publish, 1 to 64.
//     Default 2.
//   - confirm_window: most unconfirmed messages per publish channel, 1 to
//     65536. Default 1024.
//   - max_message_bytes: the largest mq.Message.Size accepted, up to
//     536870912 (512 MiB). Default 16777216 (16 MiB, RabbitMQ 4's max_message_size; 3.x allows 128 MiB).
//   - heartbeat: the AMQP heartbeat interval, e.g. 10s. Default 10s
//     (amqp091-go's default).
//   - reconnect_max: the longest wait between reconnection attempts, which
//     start at 50ms and double. Default 5s.
//   - management: the base URL of the management plugin's HTTP API, as
//     in management=http://host:15672 (http or https, with a reverse
//     proxy's path prefix if any). Backlog then counts
//     unacknowledged messages (InFlight) and those waiting in the group's
//     delay queues (Delayed), which AMQP does not report, signing in with
//     the amqp URL's user and password (the user needs the management or
//     monitoring tag); the URL must carry no user info of its own. Default
//     none: Backlog counts ready messages only and its Note says so.
//   - tls: TLS on or off. Default on for amqps:// and off for amqp://;
//     the scheme decides, so tls=true (or any tls_* parameter) on amqp://
//     and tls=false on amqps:// are errors.
//   - tls_ca_file: PEM file of the CA certificates that verify the
//     broker. Default the system's roots.
//   - tls_cert_file, tls_key_file: PEM files of a client certificate and
//     its key, given together. Default no client certificate.
//   - tls_server_name: the name the broker's certificate must carry.
//     Default the URL's host.
//   - tls_insecure_skip_verify: true accepts any broker certificate, for
//     tests only. Default false.
//
// The TLS parameters apply when Options.Config.TLSClientConfig is nil;
// without any, amqp091-go's default TLS configuration is used on amqps://.
//
// The password never appears in errors, logs or String.
//
// Several hosts. A URL may name several nodes of one cluster, separated by
// commas, sharing user, password, vhost and parameters:
//
//	amqp://user:password@h1:5672,h2:5672,h3:5672/vhost?param=value
//
// New tries them in turn from the first until one accepts a connection.
// After a connection is lost, the driver tries the host after the lost one
// first, then the others in turn, with the reconnection backoff between
// rounds. A host that fails while another is tried next is logged at warn
// level with the reason, and so is each failover (from, to, and why the
// old connection ended). When every host fails, the error names each
// failure. On amqps:// each host's certificate is checked against that
// host's name unless tls_server_name is set. IPv6 literals work only in
// single-host URLs (Go's URL parser rejects them in a list).
//
// # Delivery semantics
//
// Publish sends persistent messages with the mandatory flag on a few
// shared confirm-mode channels and returns nil only when the broker has
// confirmed every one of them. Concurrent calls are pipelined: messages
// are written without waiting, and a window of unconfirmed messages per
// channel bounds memory. A message the exchange routes to no queue (the
// topic has no group yet) comes back as a basic.return and fails with an
// error wrapping mq.ErrNotFound: it was not stored anywhere, so reporting
// success would lose it silently. Provision the groups first, or set
// allow_unroutable to accept the loss. When the connection is lost,
// Publish waits for the reconnection (bounded by its ctx) and resends the
// messages that were not confirmed; a message can then be stored twice,
// but none is reported sent without a confirm. While a broker resource
// alarm blocks the connection, Publish waits, bounded by ctx.
//
// Subscribe consumes with manual acknowledgements and acks a message when
// its handler returns nil. A handler error schedules a redelivery after
// the subscription's Backoff or the error's mq.RetryAfter delay: the
// driver publishes a copy (with the attempt count in a header) to a delay
// queue "<queue>.mq-delay-<ms>", whose message TTL dead-letters it back to
// the group's queue, and acks the original only once the copy is
// confirmed (if that fails, the original is requeued at once). Delays
// are rounded up to at most 25% more, so that a few delay queues serve
// any backoff; the longest is 2^32-1 ms (about 49 days). A handler error
// wrapped with mq.Permanent rejects the message without requeueing: the
// queue's dead-letter exchange receives it when dead_letter_exchange (or a
// policy) sets one; otherwise RabbitMQ drops it, and the driver logs it at
// error level first. A panicking handler counts as an error.
//
// Message.Attempt is exact on quorum queues: it adds the attempt count the
// driver carries on redelivered copies to the queue's x-delivery-count,
// which also counts deliveries lost to a crash, a lost connection or a
// shutdown (as RabbitMQ 3.x counts them; tested on 3.10.8). Classic queues
// only flag a redelivery, so after such a loss
// Attempt counts one more however many times it happened. Messages
// prefetched but not yet handled when a subscription stops are requeued,
// which a quorum queue counts as a delivery. Each of the two counts is
// read as 0 to MaxAttempt (2^30): a larger mq-attempt or
// x-delivery-count, as another AMQP publisher may set, counts as
// MaxAttempt and a negative one as 0, so Attempt is always at least 1.
//
// Message.PublishTime is zero for messages published through mq:
// RabbitMQ does not record when it accepted a message. A timestamp
// property set by another AMQP publisher is reported as it is.
// Acknowledgements are combined: while other deliveries of the channel
// are still being handled, an ack waits (for at most 1 ms, and at most a
// quarter of the prefetch of them) to go out in one basic.ack with the
// multiple flag, which covers only messages below the oldest one still
// unsettled, so it never acknowledges a message that was not handled
// successfully. Acks above a slow message go out one by one after that
// 1 ms; an ack with nothing else in flight is sent at once; and
// Subscribe writes every pending ack before it closes the channel.
//
// The connection is re-established with exponential backoff and jitter
// after a failure; subscriptions re-declare their topology (unless
// provision is false) and resume consuming. Unacknowledged messages of the
// lost connection are redelivered by the broker.
//
// Close stops fetching, lets running handlers finish and settle, closes
// the consuming channels (so the acks reach the broker first), waits for
// Publish calls in progress, then closes both connections. If its ctx
// ends first, handlers are canceled and running calls get
// driver.CloseGrace more before the connections close.
//
// Quorum queues in RabbitMQ 4 have a default delivery limit of 20, after
// which a message is dead-lettered or dropped. Deliveries the driver
// redelivers through delay queues are new copies and do not count towards
// it; only crashes and shutdowns do. Use the dead-letter middleware to
// bound handler failures.
//
// # Capabilities
//
// FanOut (every group has its own queue), NackDelay (delay queues; false
// with provision=false, where failed messages are redelivered at once),
// Persistent (durable queues, persistent messages). Not supported:
// OrderingByKey (competing consumers and redelivery reorder a queue),
// Replay (StartAt(mq.Earliest) returns mq.ErrNotSupported: a new queue
// holds only messages published after it exists) and DelayedDelivery (a
// non-zero Message.Delay returns mq.ErrNotSupported). MaxMessageBytes is
// max_message_bytes. MaxKeyBytes and MaxHeaderKeyBytes are 255 (the routing
// key and header keys are AMQP short strings), MaxHeaders 4096 and
// MaxHeaderBytes 32 KiB (header keys and values, which travel with the
// key, a long ID and framing in one 64 KiB budget of an AMQP frame).
// Publish checks them before sending anything: a longer Key or header key
// is mq.ErrInvalidMessage, larger headers mq.ErrMessageTooLarge (and
// mq.ErrInvalidMessage). Header keys RabbitMQ sets
// itself (x-death, x-delivery-count, x-first-death-*, x-last-death-*) are
// refused with mq.ErrInvalidMessage and removed from received messages.
//
// # Interoperability
//
// Whatever this driver delivers, Publish accepts unchanged, and it arrives
// byte-exact: messages from pika, amqp091-go, the Java client or any other
// AMQP producer can be forwarded or dead-lettered (middleware.DeadLetter)
// like mq's own. Fields map to and from AMQP as follows (the left column
// is mq.Message):
//
//	field        Publish writes                  delivery reads
//	-----------  ------------------------------  ----------------------------------
//	ID           message-id (any bytes); over    message-id; else header "mq-id";
//	             255 bytes, header "mq-id"       else (no message-id: a foreign
//	                                             message) "amqp-sha256:" and 32 hex
//	                                             digits, see below
//	Key          routing key, and header         header "mq-key" when present; else
//	             "mq-key" when not empty (at     the routing key the message was
//	             most 255 bytes, any bytes)      delivered with, byte for byte
//	Body         body                            body
//	Header       one long-string header per      every header except keys starting
//	             entry, keys and values any      "mq-" and those RabbitMQ sets
//	             bytes (keys at most 255)        (x-death, x-delivery-count,
//	                                             x-first-death-*, x-last-death-*),
//	                                             rendered as text by the rule below
//	Attempt      header "mq-attempt" on          see Delivery semantics (quorum
//	             redelivery copies only          x-delivery-count plus the driver's
//	                                             count)
//	PublishTime  not written (RabbitMQ does      the timestamp property, set by the
//	             not record when it accepted     producer (whole seconds), when
//	             a message)                      present; else zero
//
// Header values are rendered as strings thus: long and short strings and
// byte arrays as their bytes, unchanged (not necessarily UTF-8); booleans
// as "true" and "false"; integers in decimal; floats in Go's shortest
// form (strconv 'g', -1); timestamps in RFC 3339, UTC; decimals as
// "<value>e-<scale>" (12345 with scale 2 is "12345e-2"); void as ""; and
// tables and arrays as JSON (encoding/json, object keys sorted), with the
// same rules inside except that numbers, booleans and void stay JSON
// numbers, booleans and null (so the table {b: 2, a: [x, true]} is
// {"a":["x",true],"b":2}). Publishing the message again sends each header
// as the string it was rendered to: the value arrives byte-exact, as text
// rather than its original AMQP type.
//
// RabbitMQ keeps no identity for a message, so a message published
// without a message-id gets as its ID the SHA-256, in hex, cut to 128
// bits, of its routing key, properties (content type and encoding,
// correlation id, reply-to, type, app id, user id, priority, timestamp),
// headers as rendered (sorted by key, without those RabbitMQ and the
// driver add) and body: the same on every delivery of the message,
// including requeues after a crash, and on the driver's redelivery copies,
// which carry the ID and Key in the "mq-id" and "mq-key" headers because
// the delay queue changes their routing key. Two such messages equal in
// all of these share an ID, which a consumer deduplicating by ID treats
// as one message; producers that need distinct IDs set message-id. A
// random ID per delivery would defeat deduplication on every redelivery;
// a content ID only merges messages that could not be told apart anyway.
//
// Other properties (content type and encoding, correlation id, reply-to,
// expiration, type, app id, user id, priority) are not mapped to Message
// fields and are not published again; Message.As gives the
// *amqp091.Delivery with all of them and with every header in its AMQP
// type.
//
// # As
//
// Broker.As accepts **amqp091.Connection (the publishing connection) and
// **amqp091.Channel (a new channel on it, which the caller closes); both
// fail while disconnected and after Close. Message.As on a received
// message accepts *amqp091.Delivery: the raw delivery, whose Ack, Nack and
// Reject must not be called (the driver settles it).
//
// # Errors
//
// Errors start with "rabbitmq: " and wrap mq's sentinels: mq.ErrInvalidURL
// for bad URLs; mq.ErrInvalidOption for bad options, and for an exchange
// or queue that exists with other settings (another exchange type, queue
// type or dead-letter exchange; the message names the difference);
// mq.ErrNotFound for unroutable messages and, with provision=false,
// missing exchanges and queues; mq.ErrMessageTooLarge for messages over
// max_message_bytes or the header limit, and for bodies the broker refuses
// as larger than its max_message_size; mq.ErrClosed after Close. A wrong
// user name or password fails New and mq.Open with "authentication
// failed", which mq.IsRetryable reports false; network failures are
// retryable. Context errors are returned so that errors.Is(err,
// ctx.Err()) holds. A broker certificate that does not verify (an
// untrusted CA, a name it does not carry) fails New with "TLS: the
// broker's certificate does not verify", also not retryable.
//
// # Tested topologies
//
// Besides the single node every test uses, make test-cluster runs the
// tests named Cluster, TLS or SASL against RabbitMQ 3.10.8 (Erlang
// 25.2.3, Debian 12's package) as a three-node cluster on one machine
// (classic_config peer discovery, quorum queues with a replica on each
// node), AMQP and AMQPS (TLS 1.2+, a CA and server certificate made with
// openssl, PLAIN authentication):
//
//   - the conformance suite through the three-host URL, its broker-restart
//     case restarting the node the clients use (they fail over and back);
//   - AMQPS round trips from each node to the next; a wrong password, an
//     untrusted CA and a wrong server name each fail New at once with an
//     error naming the problem, without the password, not retryable;
//   - a URL whose first host refuses: the next one is used, the skip is
//     logged;
//   - kill -9 of the node leading the group's quorum queue, clients on
//     another node, 8 publishers and two subscribers of one group: 0
//     messages lost, longest Publish under a second, consumers resumed in
//     under a second (a new leader is elected at once);
//   - kill -9 of the node the clients (three-host URL) are connected to,
//     which also leads the quorum queue: the clients fail over within
//     milliseconds and nothing is lost (duplicates: a few resent
//     unconfirmed messages), but the queue on the two remaining nodes
//     made no progress until the killed node came back: Publish blocked
//     until then (9s with the node restarted 5s after the kill, 18 to 32s
//     with it back 25 to 40s after, 50s with it away 45s).
//     Bound Publish with its ctx, and expect a quorum queue to pause
//     when the node holding its leader and its clients' connections dies
//     on this RabbitMQ version.
package rabbitmq
