// Package kafka is the mq driver for Apache Kafka, built on
// github.com/segmentio/kafka-go.
//
// Import it for its side effect to open kafka:// URLs with mq.Open:
//
//	import _ "github.com/seedmq/mq/kafka"
//
//	b, err := mq.Open(ctx, "kafka://k1:9092,k2:9092?group=billing")
//
// or call New with Options, which take kafka-go's own types for TLS,
// SASL and compression. A URL parameter that sets an Options field is
// named after it in snake_case (provision=false sets NoProvision); the
// tls* and sasl* parameters build Options.TLS and Options.SASL.
//
// An mq topic is a Kafka topic; an mq group's subscribers of a topic form
// a Kafka consumer group (see Groups under Delivery semantics);
// Message.Key is the record key; Message.Header entries are record
// headers, and Message.ID travels in the header "mq-id".
//
// # URL
//
// kafka://host:port[,host:port...][?parameter=value&...]
//
// The hosts are the bootstrap brokers. User info (kafka://user:password@host)
// supplies SASL credentials together with the sasl parameter. Parameters,
// with their defaults:
//
//   - group: the consumer group Subscribe uses without mq.Group. Default
//     none: Subscribe then requires mq.Group.
//   - client_id: the client ID sent to the brokers. Default "mq".
//   - provision (true|false): create missing topics on Publish and
//     Subscribe. Default true. With false, a missing topic is an error
//     wrapping mq.ErrNotFound (Provision still creates topics).
//   - partitions: partition count of topics the driver creates. Default 3.
//   - replication_factor: replication factor of topics the driver
//     creates. Default 1 (use 3 on a production cluster).
//   - start_at (latest|earliest): where a new group starts when Subscribe
//     is given no mq.StartAt. Default latest.
//   - exact_group_id (true|false): use the group name as the Kafka consumer
//     group ID instead of "<group>.<topic>" (see Groups below). Default
//     false.
//   - acks (all|leader|none): replicas that must store a message before
//     Publish returns. Default all. leader and none trade durability for
//     latency; none breaks mq's publish contract.
//   - compression (none|gzip|snappy|lz4|zstd): batch compression. Default
//     none.
//   - batch_size: most messages per partition in one produce request.
//     Default 100.
//   - batch_timeout: how long a partition's batch waits for more messages.
//     Default 1ms (see Publishing).
//   - max_message_bytes: the broker's message.max.bytes. Default: read
//     from the broker at Open (Kafka's default is 1048588).
//   - dial_timeout: bound on each connection attempt. Default 10s.
//   - session_timeout: consumer group session timeout. Default 10s.
//   - heartbeat_interval: consumer group heartbeat; also how fast a member
//     notices a rebalance. Default 500ms.
//   - rebalance_timeout: how long the coordinator waits for members to
//     rejoin; a revoked partition waits up to three quarters of it for
//     the messages it already fetched to be handled. Default 30s.
//   - commit_interval: how often acknowledged offsets are committed.
//     Default 100ms.
//   - isolation (read_committed|read_uncommitted): which records of
//     transactional producers Subscribe delivers. Default read_committed
//     (see Java compatibility).
//   - tls (true|false): connect with TLS. Default false. Implied by any
//     tls_* parameter; tls=false with a tls_* parameter is an error.
//   - tls_ca_file, tls_cert_file, tls_key_file: PEM files for the CA pool
//     and a client certificate. Default: system roots, no client
//     certificate.
//   - tls_server_name: name to verify the brokers' certificates against.
//     Default: the host dialed.
//   - tls_insecure_skip_verify (true|false): do not verify certificates.
//     Default false; for tests only.
//   - sasl (plain|scram-sha-256|scram-sha-512): SASL mechanism. Default
//     none.
//   - sasl_user: SASL user, unless given in the URL's user info.
//   - sasl_password_env: name of an environment variable holding the SASL
//     password.
//   - sasl_password_file: file holding the SASL password (a trailing
//     newline is ignored).
//
// Give the password one way only: in the URL, through sasl_password_env
// or through sasl_password_file. The latter two keep it out of
// configuration strings. Passwords never appear in errors, logs or
// String. Unknown, repeated or malformed parameters are errors wrapping
// mq.ErrInvalidURL that name the parameter; the error for replication or
// start names replication_factor or start_at.
//
// Open connects at once: it dials the brokers, checks that one answers a
// Kafka request, and reads message.max.bytes, all bounded by its ctx, so
// an unreachable cluster fails Open with a clear (retryable) error.
//
// # Delivery semantics
//
// Publishing. Publish returns nil once the brokers acknowledged every
// message with the configured acks (default all: every in-sync replica).
// kafka-go's Writer keeps one batch open per partition; concurrent Publish
// calls join it, so many goroutines publishing one message each get batch
// throughput, and the batch is sent when it is full, after batch_timeout
// (1ms), or as soon as the partition's previous request returns. A lone
// Publish therefore returns after about one broker round trip (a few ms
// locally), not after kafka-go's default 1s batch timeout. Messages that
// fail with transient errors (a leader election, a restarting broker, a
// dropped connection) are retried, by kafka-go within each request and by
// Publish for up to 15s with backoff from 100ms to 1s (bounded by ctx);
// after that Publish returns an error for which mq.IsRetryable is true. A
// retried message can be stored twice if the broker stored it but its
// answer was lost (at-least-once). When ctx ends first, Publish returns
// the ctx error, and the messages may still be written.
//
// Partitioning. A message with a Key goes to the partition Java's default
// partitioner picks, (murmur2(key) & 0x7fffffff) % partitions (kafka-go's
// Murmur2Balancer, pinned against Kafka's own test vectors), so Java,
// librdkafka and this driver agree. A message without a Key (Key "") is
// sent with a null key to a random partition (librdkafka's
// murmur2_random; the Java client's sticky partitioner is likewise
// unordered), spreading load; no order is kept among such messages.
//
// Consuming. Each Subscribe call is one member of the consumer group. It
// fetches each assigned partition with its own connection and hands messages
// to up to mq.Concurrency handlers across all of them (default 1).
// Messages with the same Key are handled one at a time in offset order;
// messages without a Key may be handled in parallel, also within a
// partition.
//
// Commits. A partition's committed offset only ever moves to just past
// the longest run of fetched messages that are all acknowledged: a
// handler that finishes early never moves it past one still running or
// waiting to be retried. Commits are sent every commit_interval, when a
// partition is revoked in a rebalance, and when Subscribe stops. A
// revoked partition first lets the messages it already fetched be handled
// (as a Java consumer finishes the records of its last poll), for up to
// three quarters of rebalance_timeout; a message waiting for a retry is
// left to the new owner. So a fetched message is redelivered to the new
// owner only if handling outlasts that wait. Commits carry the member's
// generation, so a member that lost a partition cannot move its offset.
//
// Redelivery. A handler error is a nack: the message is retried in this
// process after the subscription's Backoff (or the RetryAfter delay),
// keeping its place: later messages of its key wait, and its partition's
// commit point stays before it, so a crash meanwhile redelivers it from
// Kafka. Attempt counts are exact within the process, and survive
// rebalances, Subscribe restarts and crashes up to the last commit: the
// failed-attempt counts of unacknowledged messages are committed with the
// offset as commit metadata ("mq-attempts:offset=count,...", at most 100
// messages per partition) and read back by the partition's next owner.
// A message that failed after the last successful commit restarts at the
// last committed count.
//
// Permanent failures. Kafka has no dead-letter queue: a handler error
// wrapped with mq.Permanent is logged at error level in the words every
// driver uses (topic, group, ID, attempt and error, plus partition and
// offset) and the message is acknowledged and skipped. Use the
// dead-letter middleware to keep such messages.
//
// Shutdown. When Subscribe's ctx ends or the broker is closed, the member
// stops fetching, lets running handlers finish (canceling their ctx when
// Subscribe's ctx ended or Close's ctx expires), commits what was handled,
// and leaves the group; fetched messages not yet handled are redelivered
// to the group's next member.
//
// Groups. A new group (one with no committed offset for a partition)
// starts at the end of the partition (mq.Latest, the default) or at its
// oldest retained message (mq.Earliest: replay). The start is resolved
// and committed as soon as the partition is assigned, so it holds across
// rebalances. Provision creates the group by committing the current end
// offsets, so messages published after Provision returns reach the group
// even before it has a member. By default the Kafka consumer group ID is
// "<group>.<topic>": Kafka refuses offset commits from outside a group
// with active members, so a group shared by several topics could not be
// provisioned for a new topic while it consumes others, and a rebalance
// on one topic would pause them all. Set exact_group_id=true to use the
// group name as is (for example to take over an existing consumer group).
//
// # Java compatibility
//
// The driver shares Kafka with the Java client, librdkafka and the
// clients built on them:
//
//   - Consumer groups: members join with the standard "consumer" protocol
//     type; subscriptions and assignments are encoded exactly as the Java
//     client's ConsumerProtocol (version 3, owned partitions and
//     generation included, as Java 3.9 writes them; versions 0 to 3 and
//     newer are read), so Java, librdkafka and mq members can share one
//     group (with exact_group_id=true, or a Java group.id of
//     "<group>.<topic>"), and a group can move from Java to mq and back
//     one member at a time, committed offsets included.
//   - Assignors: the driver offers the range assignor only. The Java
//     client's default list (range, cooperative-sticky) and librdkafka's
//     (range, roundrobin) agree on it; a group whose other members allow
//     only cooperative-sticky, roundrobin or sticky cannot be joined
//     (the coordinator answers INCONSISTENT_GROUP_PROTOCOL and Subscribe
//     returns that error). When mq leads the group it assigns for every
//     member, Java ones included, over all the topics they subscribe to,
//     as Java's RangeAssignor does (without rack awareness); a member
//     whose subscription cannot be read is logged at warn level and gets
//     nothing. A member that gets no partition logs so at info level.
//     Rebalances are eager: every member gives up its partitions (after
//     draining and committing) before the new assignment.
//   - Isolation: read_committed (the default) delivers what a Java
//     consumer with isolation.level=read_committed delivers: records of
//     aborted transactions are dropped, using the aborted-transaction
//     list of each fetch response, and a partition is read up to its last
//     stable offset. Transaction markers (control records) are never
//     delivered, in either isolation. Offsets the driver does not deliver
//     still count as handled, so the committed offset moves past them and
//     the group shows no lag at the end of a transactional topic.
//   - Partitioner: keys go where Java's default partitioner puts them
//     (see Partitioning).
//   - Timestamps: Message.PublishTime is the record's timestamp, the
//     producer's create time or the broker's log-append time, whichever
//     the topic keeps.
//
// Not compatible: static membership (group.instance.id) and the
// cooperative protocols are not offered; the new consumer group protocol
// of KIP-848 (group.protocol=consumer) is not spoken, so Java members must
// use the classic one (Java 3.9's default); offset commits carry the driver's
// attempt counts as commit metadata (other clients ignore it, and the
// driver ignores theirs); records in the old message formats (v0, v1)
// are delivered but never filtered as transactional.
//
// # Capabilities
//
// FanOut, OrderingByKey, Replay, NackDelay (in-process) and Persistent are
// true; DelayedDelivery is false, so a message with a non-zero Delay is
// rejected with mq.ErrNotSupported. MaxMessageBytes is the broker's
// message.max.bytes less the record batch overhead and room for the
// framing of 64 headers (1047836 with Kafka's default); a message with
// more headers can still exceed the broker's limit, which Publish reports
// with mq.ErrMessageTooLarge before sending anything. MaxHeaders is 0 (no
// limit besides size).
//
// # As
//
// Broker.As accepts **kafka.Writer (the publisher), **kafka.Client (admin
// requests), **kafka.Transport (the publisher's and admin client's
// connections) and **kafka.Dialer (the connection settings Open checks
// the brokers with; consumers use transports of their own with the same
// settings). Group memberships and fetch connections belong to running
// subscriptions and are not exposed. Message.As on a delivered message accepts *kafka.Message, the
// record as fetched (partition, offset, raw headers, time).
//
// # Errors
//
// Errors are prefixed "kafka: " and wrap mq's sentinels: mq.ErrClosed
// after Close; mq.ErrInvalidTopic for names outside Kafka's rules (ASCII
// letters, digits, '.', '_' and '-', at most 249 bytes, not "." or "..");
// mq.ErrInvalidURL and mq.ErrInvalidOption for bad configuration;
// mq.ErrNotFound for a missing topic with provisioning off;
// mq.ErrMessageTooLarge for oversized messages (checked before sending)
// and for the broker's MESSAGE_TOO_LARGE; mq.ErrNotSupported for Delay.
// Network failures and Kafka errors the protocol marks retriable are
// retryable (mq.IsRetryable). Context errors stay errors.Is-equal to
// ctx.Err(). A Publish in which some messages failed returns an error
// wrapping *mq.PublishError naming them.
package kafka
