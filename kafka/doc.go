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
// headers, and Message.ID travels in the header "mq-id" (see
// Interoperability for records from other producers).
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
//     none, as in the Java client and librdkafka (franz-go compresses with
//     snappy by default). Each produce request's batch is compressed
//     once; with large, compressible bodies snappy or lz4 cuts the bytes
//     the broker stores and consumers fetch several-fold for little
//     producer CPU (with 64 KiB bodies that compress well, snappy about
//     doubles end-to-end throughput on a local broker).
//   - batch_size: most messages per partition in one produce request.
//     Default 100.
//   - batch_timeout: accepted for compatibility and ignored: the producer
//     never waits for a timer (see Publishing).
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
// The driver speaks Kafka's produce protocol through kafka-go's Transport
// (not kafka-go's Writer) and keeps one produce request in flight per
// partition. A Publish whose partition has no request in flight is sent
// at once: a lone Publish returns after one broker round trip, with no
// batch timer. Messages published while a partition's request is in
// flight wait in its queue and all go out in its next request, sent as
// soon as the previous one is answered (group commit): many goroutines
// publishing one message each get batch throughput. A request holds at
// most batch_size messages and message.max.bytes bytes; the rest wait for
// the next. Keyless messages go to a partition with no request in flight
// (see Partitioning), so with several partitions a topic has several
// requests in flight at once.
//
// Order. With one request in flight per partition, messages of one
// partition are stored in the order their Publish calls queued them, and
// a failed request is retried before the partition's next request is
// sent, so a retry never overtakes or falls behind later messages. A
// Publish whose ctx ends while its request is in flight returns at once,
// but the partition's next request still waits for that request's
// answer (or its 15s timeout), so the message, if stored, is not stored
// after later ones. Two Publish calls of the same key made one after the
// other (the second after the first returned) are stored in that order;
// concurrent calls in the order they reached the queue. The driver does
// not use Kafka's idempotent producer (kafka-go's record encoder cannot
// carry producer IDs and sequence numbers), so order does not depend on
// it.
//
// Retries and duplicates. A request that fails with a transient error (a
// leader election or moved leader, a restarting broker, a dropped or
// stalled connection, no answer within 15s) is sent again with backoff
// from 50ms to 1s for up to 15s, bounded by Close; after a leader change
// the driver first refreshes its cluster metadata. After that Publish
// returns an error for which mq.IsRetryable is true. A retried request
// can store its messages twice if the broker stored them but its answer
// was lost (at-least-once; consumers see the duplicate with the same
// mq-id header). When ctx ends first, Publish returns ctx's error at
// once; messages already sent may still be stored, and messages still
// queued are not sent. If some messages fail, Publish returns a
// *mq.PublishError naming them (messages for different partitions travel
// in different requests); if all failed alike, that error.
//
// Close stops new publishes, waits for running Publish calls and sends
// everything queued, bounded by its ctx; when ctx ends, what is left
// fails with mq.ErrClosed.
//
// Partitioning. A message with a Key goes to the partition Java's default
// partitioner picks, (murmur2(key) & 0x7fffffff) % partitions (kafka-go's
// Murmur2Balancer, pinned against Kafka's own test vectors), so the Java
// client and this driver agree, and so does librdkafka with
// partitioner=murmur2_random (its default, consistent_random, hashes keys
// with CRC32 and places them elsewhere). A message without a Key (Key "") is
// sent with a null key to a partition with no request in flight, so
// that it goes out at once (the search starts at a different partition
// each time, spreading lone messages over all of them), or, when every
// partition is busy, to the one whose request has been in flight longest;
// all keyless messages of one Publish call go to the same partition. Like
// the Java client's sticky partitioner, this keeps no order among
// messages without a key. Partitions added to a topic are used within a
// minute (the Java client: within metadata.max.age.ms, 5 minutes); keys
// then map by the new count, as in Java.
//
// Consuming. Each Subscribe call is one member of the consumer group. It
// fetches each assigned partition with its own connection and hands messages
// to up to mq.Concurrency handlers across all of them (default 1).
// Messages with the same Key are handled one at a time in offset order;
// messages without a Key may be handled in parallel, also within a
// partition. A fetch asks for up to 4 MiB per partition (twice the
// largest record the broker accepts, if more); while one response is
// being delivered the next is fetched, so a partition holds at most two.
// The driver reads the responses itself rather than through kafka-go's
// decoder: a delivered message's Body, and the Key, Value and header
// values of its native kafka.Message, are slices of that response, not
// copies, and its strings (Key, ID, Header values) share 64 KiB blocks.
// So a handler that keeps a message after it returns keeps the response
// it came in reachable, up to the fetch size; keep m.Clone() to hold only
// the message's own bytes. Record batches of message format v2 (Kafka 0.11
// and later) are read with every compression codec; older message sets
// go through kafka-go's decoder.
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
// offset as commit metadata ("mq-attempts:s=mark,offset=count,...", at
// most 100 messages per partition, under 3 KB) and read back by the
// partition's next owner. A message that failed after the last successful
// commit restarts at the last committed count.
//
// Deliveries cut short count too, so that a message that crashes the
// process (out of memory, a fatal error) reaches an attempt limit such as
// middleware.DeadLetter's: while handlers run, the periodic commit also
// carries the highest offset of the partition whose handler has started
// (the started mark; a commit is sent when it moves, even if the offset
// does not), and the next owner, after a crash, a restart or a
// rebalance, counts every redelivered offset at or below the mark as one
// more attempt. The precision is the commit interval: a handler started
// less than commit_interval before a crash is not counted. The count can
// run ahead by one, never behind: offsets below the mark whose handlers
// had not started (handlers of other keys run ahead) or that were waiting
// for a retry are counted as attempted too. A graceful rebalance or
// Subscribe stop lets running handlers finish before the last commit,
// which then carries no mark (their outcomes are in the counts), so
// attempts stay exact; only a handler still running when the revoke's
// wait ends (three quarters of rebalance_timeout) is counted as cut short.
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
//     only cooperative-sticky, roundrobin or sticky cannot be joined:
//     the coordinator answers INCONSISTENT_GROUP_PROTOCOL and Subscribe
//     returns at once an error wrapping it that names the members'
//     assignor (or protocol type) and the driver's ("range"). When mq
//     leads the group it assigns for every member, Java and librdkafka
//     ones included, over all the topics they subscribe to, as Java's
//     RangeAssignor does (without rack awareness); a member
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
//   - librdkafka (and the clients built on it: confluent-kafka for Python,
//     Go and .NET, node-rdkafka, ...), tested with librdkafka 2.16: a
//     consumer with the default partition.assignment.strategy
//     (range,roundrobin) or range alone, the default classic
//     group.protocol and eager rebalancing, shares a group with mq
//     members, led by either, and a group moves from librdkafka to mq and
//     back one member at a time with its committed offsets. Records of a
//     librdkafka producer arrive byte-exact (binary keys, values and
//     header values; a null header value gives ""), its transactions are
//     honoured as by librdkafka's own read_committed consumer (its
//     default isolation.level), and mq's records reach librdkafka
//     consumers byte-exact. Set partitioner=murmur2_random on librdkafka
//     producers that must place keys where mq and Java do. A group whose
//     librdkafka members allow only cooperative-sticky or roundrobin
//     cannot be joined (see Assignors).
//
// Not compatible: static membership (group.instance.id) and the
// cooperative protocols are not offered; the new consumer group protocol
// of KIP-848 (group.protocol=consumer) is not spoken, so Java and
// librdkafka members must use the classic one (the default of Java 3.9 and
// librdkafka 2.16); offset commits carry the driver's attempt counts and
// started mark as commit metadata (other clients ignore it, and the
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
// # Interoperability
//
// Whatever this driver delivers, Publish accepts unchanged, and it arrives
// byte-exact: records from Java, librdkafka or any other producer can be
// forwarded or dead-lettered (middleware.DeadLetter) like mq's own. Fields
// map to and from records as follows ("record" is the Kafka record; the
// left column is mq.Message):
//
//	field        Publish writes                  delivery reads
//	-----------  ------------------------------  -----------------------------------
//	ID           header "mq-id" (any bytes)      header "mq-id"; without it (a
//	                                             foreign record)
//	                                             "kafka:<topic>:<partition>:<offset>",
//	                                             the same on every redelivery and
//	                                             for every group
//	Key          record key, any bytes; ""       record key, byte for byte; a null
//	             is a null key                   and an empty key both give ""
//	Body         record value                    record value (null gives empty)
//	Header       one record header per entry,    every record header, keys and values
//	             keys and values any bytes       byte for byte, except keys starting
//	             (an empty value is an empty,    "mq-"; a null and an empty value both
//	             not a null, value)              give ""; a key that repeats gives
//	                                             its last value
//	Attempt      not written                     counted by the driver (see
//	                                             Redelivery), not read from the record
//	PublishTime  not written: the record's       the record timestamp: CreateTime,
//	             CreateTime is the client's      the producer's clock (Kafka's
//	             clock when the batch is sent    default; a Java producer may set any
//	                                             time, e.g. 2000-01-01), or
//	                                             LogAppendTime, the broker's clock,
//	                                             when the topic sets
//	                                             message.timestamp.type=LogAppendTime
//	                                             (the batch's, as Java reads it);
//	                                             which of the two is not reported
//
// Everything a record carries stays reachable: Message.As gives the
// *kafka.Message as fetched, with every header in order (repeated keys,
// null values and "mq-" keys included), partition, offset and time. Header
// keys and values, keys and IDs need not be UTF-8: a Java LongSerializer
// key arrives as its eight bytes and is published back as the same eight
// bytes, so it lands in the same partition.
//
// # As
//
// Broker.As accepts **kafka.Writer (a kafka-go Writer with the driver's
// acks, compression and partitioner, sharing its connections; Publish
// does not use it), **kafka.Client (admin requests), **kafka.Transport
// (the connections Publish and the admin client use) and **kafka.Dialer
// (the connection settings Open checks the brokers with; consumers use
// transports of their own with the same settings). Group memberships and
// fetch connections belong to running subscriptions and are not exposed.
// Message.As on a delivered message accepts *kafka.Message, the
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
// wrapping *mq.PublishError naming them. At Open, a SASL authentication
// failure ("SASL authentication failed") and a broker certificate that
// does not verify ("TLS: the broker's certificate does not verify") are
// not retryable: only a change of configuration fixes them.
//
// # Tested topologies
//
// Besides the single node every test uses, make test-cluster runs the
// tests named Cluster, TLS or SASL against Apache Kafka 3.9.1 (KRaft, on
// OpenJDK 17) as a three-node cluster on one machine: each node both
// broker and controller, replication factor 3, min.insync.replicas 2,
// unclean leader election off; listeners PLAINTEXT, SSL (TLS 1.2+, a CA
// and server certificate made with openssl) and SASL_SSL with
// SCRAM-SHA-512:
//
//   - the conformance suite with replication_factor=3, its broker-restart
//     case restarting one node;
//   - round trips over SSL (tls_ca_file) and over SASL_SSL with
//     SCRAM-SHA-512 (password from sasl_password_env); a wrong password
//     (in the URL or a sasl_password_file), an untrusted CA and a wrong
//     server name each fail Open within a second with an error naming
//     the problem, without the password, not retryable;
//   - kill -9 of the node leading partition 0 of a three-partition topic,
//     with 8 publishers (acks=all) and a consumer group of two members,
//     then the node's return: 0 messages lost, a few duplicate
//     deliveries (offsets not yet committed when the coordinator or
//     partitions moved), the longest Publish 9 to 13s (the controller
//     declares the node dead after broker.session.timeout.ms, 9s by
//     default, then leaders move; the bound is the 15s retry window plus
//     one request), and consumers resumed by themselves on every
//     partition within 11 to 14s (the whole group pauses when the node
//     was also its coordinator).
//
// SASL/PLAIN and SCRAM-SHA-256 are configured the same way but not run
// against a broker here; client certificates (tls_cert_file,
// tls_key_file) are loaded but no tested listener requires them.
package kafka
