// Package sqs is mq's driver for Amazon SQS (and servers that speak its
// API, such as ElasticMQ), built on aws-sdk-go-v2. It registers the "sqs"
// URL scheme (Scheme); New takes Options, with an *sqs.Client you
// configure yourself (Options.Client) or none, in which case it builds
// one from the standard AWS config chain.
//
// Each topic is an SQS queue, named by the topic (plus an optional
// prefix). A queue whose name ends in ".fifo" is a FIFO queue.
//
// The package also registers "sns+sqs" (SNSScheme) for fan-out the way
// AWS does it: each topic an SNS topic, each group an SQS queue
// subscribed to it (see SNS fan-out below).
//
// # URL
//
//	sqs://?region=us-east-1[&param=value...]
//
// The URL has no host or path. Credentials never go in the URL: they come
// from the standard AWS config chain (environment, shared config and
// credentials files, SSO, web identity, ECS/EC2 roles), as does the region
// when the URL omits it. Parameters (unknown or malformed ones are
// errors):
//
//	region              AWS region (default: from the AWS config chain, e.g.
//	                    AWS_REGION)
//	endpoint            endpoint URL override for local or compatible servers,
//	                    e.g. http://127.0.0.1:9324 for ElasticMQ (default: AWS's)
//	profile             shared config profile (default: AWS_PROFILE or "default")
//	queue_prefix        queue name prefix: topic "orders" with queue_prefix
//	                    "prod-" uses queue "prod-orders" (default none)
//	queue_owner         AWS account ID owning the queues, for cross-account use
//	                    (default: the caller's)
//	group               group for Subscribe without mq.Group (default none:
//	                    join the queue's group, see Groups)
//	fifo                true: every topic is a FIFO queue, named with a ".fifo"
//	                    suffix (default false: only topics ending in ".fifo")
//	provision           create missing queues on first use (default true);
//	                    false: a missing queue is mq.ErrNotFound (Provision
//	                    still creates queues)
//	wait_time           long-poll time per ReceiveMessage, 0s to 20s (default 20s)
//	visibility_timeout  visibility timeout of held messages, extended while
//	                    their handler runs, 1s to 12h (default 30s; see
//	                    Delivery semantics)
//	receivers           long-poll loops per Subscribe (default: one per ten of
//	                    its Concurrency, at least one)
//	senders             most concurrent SendMessageBatch calls per queue, 1 to
//	                    1000 (default 16)
//	dead_letter_queue   redrive target for queues the driver creates: a queue
//	                    name or ARN, "{topic}" replaced by the topic; a named
//	                    queue is created if missing (default none)
//	max_receive_count   the redrive policy's maxReceiveCount, 1 to 1000
//	                    (default 5)
//	server_max_bytes    the server's message size limit as SQS counts it (body
//	                    plus attribute names, types and values) (default
//	                    1048576, SQS's limit since August 2025 and ElasticMQ
//	                    1.7's; use 262144 for older compatible servers)
//
// Each parameter sets the Options field of the same name in CamelCase
// (provision=false sets NoProvision). The spellings prefix, account, wait,
// visibility, deadLetterQueue, maxReceiveCount and serverMaxBytes are
// errors naming the parameter to write instead.
//
// Open checks the endpoint, region and credentials at once with a
// ListQueues call (a missing ListQueues permission is not an error), as
// Broker.Ping does.
//
// # Groups
//
// An SQS queue is one consumer group: every message is handled once, by
// whichever subscription receives it. The driver records the group that
// consumes a queue in the queue tag "mq-group" (written by Provision with a
// group, or by the first Subscribe with one), and a Subscribe or Provision
// with a different group fails with mq.ErrNotSupported instead of silently
// competing for the messages: SQS has no fan-out. To deliver every message
// to several services, publish to one topic per service, or use SNS fan-out
// to one queue per service. A Subscribe without a group joins the queue's
// group, whatever it is. Without permission to read or write tags
// (sqs:ListQueueTags, sqs:TagQueue) only the groups used through one
// Broker are checked.
//
// # Delivery semantics
//
// Publish returns nil once SQS has accepted every message (SQS stores a
// message redundantly before answering). Concurrent Publish calls to one
// topic are grouped into SendMessageBatch calls of up to ten messages
// within SQS's batch size limit, with up to senders calls in flight and
// no batching timer: a lone Publish is sent at once, messages arriving
// while calls are in flight form the next batch, and a full batch of ten
// does not wait for a call to return. Entries SQS fails on its
// side are tried up to three times in all (once on FIFO queues, where a
// resend would overtake later messages); those still failing, or rejected
// as the sender's fault, are reported in a *mq.PublishError.
//
// A subscription holds at most Concurrency plus ten per receiver messages
// received and not yet settled, plus up to ten per receiver (at least
// twenty) handled and waiting for their delete: beyond that, receivers
// wait for deletes to finish. Each of its receivers long-poll loops
// asks for ten messages whenever that leaves room for ten, and handlers run
// up to Concurrency at once. After a ReceiveMessage that brought fewer
// messages than asked for (the queue had no more ready), a receiver waits
// for those messages to be deleted or released, at most 25 ms, before
// asking again, as a receive-handle-delete loop would: asking again at
// once mostly returns one or two messages per call.
// A message is received with a visibility timeout of 6 seconds (or
// visibility_timeout if shorter). While it is held (waiting for or running
// its handler, or waiting for its delete), the driver extends its
// visibility timeout to visibility_timeout once a third of the current one
// has passed, so
// a long handler is not redelivered mid-work, while most messages, handled
// within two seconds, cost no extension call. If the process dies, SQS
// redelivers a message when its current timeout ends.
//
//   - Handler returns nil: the message is deleted. Deletes are batched:
//     a message's delete waits for the other messages of the same
//     ReceiveMessage to be handled, at most 100 ms, so that each receive
//     takes one DeleteMessageBatch, as in a receive-handle-delete loop;
//     deletes that accumulate while calls run go out up to ten per call.
//     They are retried through transient failures, and a subscription's
//     deletes reach SQS before Subscribe returns, unless its ctx (or
//     Close's) has ended and they take driver.CloseGrace longer (a
//     stalled network): then they, and the visibility changes of
//     stopping, are abandoned so Subscribe returns, and SQS redelivers
//     those messages when their visibility timeout ends.
//   - Handler returns an error: the message's visibility timeout is set to
//     the subscription's Backoff (or mq.RetryAfter) delay, rounded up to
//     whole seconds and at most 12 hours, so it is redelivered no earlier.
//   - Attempt is SQS's ApproximateReceiveCount: exact across processes and
//     restarts, and it also counts a receive whose handler never ran (a
//     message released when its subscription stopped). FIFO retries in
//     place (below) add to it in the process that runs them only.
//   - Handler returns mq.Permanent(err): SQS has no reject. If the queue
//     has a redrive policy (dead_letter_queue sets one on the queues the
//     driver creates), the driver sends the message (body and attributes
//     as received) to its dead-letter queue, logs it at warning level and
//     deletes it; otherwise it logs the message at error level as dropped
//     and deletes it. It is not redelivered either way.
//   - When a subscription stops, messages it received but did not handle
//     are made visible again at once. A long poll cut short by the stop
//     stays open on the server until its wait time ends, and may take
//     messages the driver never sees; SQS redelivers those when their
//     6-second claim ends.
//
// On a FIFO queue, Key is the MessageGroupId and ID the
// MessageDeduplicationId (either is replaced by its SHA-256 in hex when SQS
// would not accept it: more than 128 characters, or not printable ASCII).
// A message without a Key uses its ID as its group, so keyless messages are
// not ordered and spread over consumers. Messages with a Key are handled
// one at a time in publish order, also across failures: SQS holds back the
// rest of a message group while one of its messages is in flight, so a
// failed FIFO message with a Key is retried in place, after its Backoff or
// mq.RetryAfter delay, with its visibility extended meanwhile and the
// later messages of its Key waiting. (Making it visible again would force
// the later messages received with it back to the queue too, counting
// receives against messages whose handler never ran.) The Key is the
// message's ordering lane in the driver.Dispatcher that runs the handlers,
// which also runs the retry in place; the message stays held meanwhile, so
// its visibility is extended wherever it waits. Such retries do not
// count toward the queue's maxReceiveCount; the dead-letter middleware,
// which counts Attempt, bounds them. If the subscription stops during the
// wait, the message becomes visible at once. Publish sends a FIFO queue's
// batches one at a time, so they reach SQS in publish order. FIFO queues
// have no per-message delay: a Message.Delay is mq.ErrNotSupported there,
// and SQS drops a message whose ID repeats within its five-minute
// deduplication window.
//
// # Capabilities
//
//	FanOut           false: a queue is one group (see Groups)
//	OrderingByKey    true only with fifo=true (every topic a FIFO queue);
//	                 otherwise false, though ".fifo" topics are ordered by Key
//	Replay           false: mq.StartAt(mq.Earliest) is mq.ErrNotSupported
//	NackDelay        true, in whole seconds, up to 12 hours
//	DelayedDelivery  true up to 15 minutes (DelaySeconds, rounded up to whole
//	                 seconds) on standard queues; false with fifo=true, and a
//	                 Delay on a ".fifo" topic is mq.ErrNotSupported
//	Persistent       true
//	MaxMessageBytes  server_max_bytes minus 8 KiB, kept for mq's attributes and
//	                 header packing: any message within it fits once encoded
//	MaxHeaders       1000 (SQS allows ten attributes; the rest are packed)
//
// # Interoperability
//
// Whatever this driver delivers, Publish accepts unchanged, and it arrives
// byte-exact: messages that boto3, the AWS SDKs or the console sent can be
// forwarded or dead-lettered (middleware.DeadLetter) like mq's own. SQS
// carries only text in bodies and String attributes, so the driver
// carries other bytes in Binary attributes, reversibly. Fields map to and
// from SQS as follows (the left column is mq.Message):
//
//	field        Publish writes                   delivery reads
//	-----------  -------------------------------  ---------------------------------
//	ID           String attribute "mq-id"; FIFO:  "mq-id" (or packed, below); else
//	             also MessageDeduplicationId      (a foreign message) the SQS
//	                                              MessageId, the same on every
//	                                              receive
//	Key          String attribute "mq-key" when   "mq-key" (or packed); else, for
//	             not empty; FIFO: also            a foreign message on a FIFO
//	             MessageGroupId (see Delivery     queue, the MessageGroupId; else
//	             semantics)                       ""
//	Body         the SQS body when it is SQS      the Binary attribute "mq-body"
//	             text, else the Binary attribute  when present, else the SQS body
//	             "mq-body" (below)
//	Header       an attribute per entry: String,  every attribute not starting with
//	             or Binary for values that are    "mq-": String and Number values
//	             not SQS text; packed when it     as text, Binary values byte for
//	             cannot be one (below)            byte; plus the packed headers.
//	                                              Never nil
//	Attempt      not written                      ApproximateReceiveCount
//	PublishTime  not written                      SentTimestamp (when SQS accepted
//	                                              the message, in milliseconds)
//
// In detail, a message published through mq looks like this to any SQS
// consumer:
//
//   - The body is the SQS message body, unchanged, when it is text SQS
//     accepts (UTF-8 without control characters other than tab, LF and CR,
//     and without U+FFFE/U+FFFF). Any other body (binary, invalid UTF-8)
//     travels byte for byte in the Binary message attribute "mq-body", and
//     the SQS body is the placeholder "mq: body in message attribute
//     mq-body". An empty body is the placeholder plus "mq-body" as the
//     String "empty".
//   - The ID is the String attribute "mq-id" and a non-empty Key the String
//     attribute "mq-key".
//   - Headers are attributes with the header's name, as long as SQS's limit
//     of ten attributes allows, trace headers (traceparent, tracestate,
//     baggage) first, then by name: String attributes, or Binary ones
//     holding the value's bytes when it is not SQS text. Headers that do
//     not fit, or whose name is not a valid attribute name (letters,
//     digits, '-', '_', '.'; not starting with "AWS." or "Amazon."; this
//     includes empty names and names that are not UTF-8) or whose value is
//     empty, are packed into the Binary attribute "mq-h": a sequence of
//     name, value, name, value..., each an unsigned LEB128 (uvarint) byte
//     length followed by its bytes. An ID or Key that is not SQS text is
//     packed there too, under the names "mq-id" and "mq-key".
//
// So a message from another producer maps thus: the SQS body is the body
// (always text, as SQS requires), String, Number and Binary attributes
// are headers, ID is the SQS MessageId and Key the MessageGroupId on FIFO
// queues. Republished through mq, a Number or Binary attribute whose
// value is SQS text comes back as a String attribute of the same value:
// the header is byte-exact, its SQS data type is not kept. Attributes
// whose names start with "mq-" are never delivered as headers, and system
// attributes (SenderId, MessageDeduplicationId and others) are not mapped;
// Message.As gives the whole SQS message, data types included.
//
// Decoding is the same whatever order the attributes come in, and the
// delivery facts (Attempt, PublishTime, the MessageId fallback for ID)
// come from SQS's system attributes, never from an attribute another
// producer can set. A packed "mq-h" pair named like a String attribute
// gives way to the attribute. An "mq-h" attribute that does not decode as
// a whole (a length past its end, a name without a value) is ignored as a
// whole: none of its pairs is applied, the rest of the message is
// delivered as usual (ID from "mq-id", else the SQS MessageId), a warning
// is logged, and Message.As still shows the attribute.
//
// # As
//
// Broker.As accepts a **sqs.Client (from
// github.com/aws/aws-sdk-go-v2/service/sqs). Message.As on a received
// message accepts a *types.Message (from
// github.com/aws/aws-sdk-go-v2/service/sqs/types): the message as SQS
// delivered it, with its receipt handle and attributes.
//
// # Errors
//
// Errors start with "sqs: " and wrap mq's sentinels: a topic that is not a
// valid queue name (1 to 80 characters of letters, digits, '-' and '_',
// ".fifo" suffix included, prefix included) is mq.ErrInvalidTopic; a
// message over MaxMessageBytes is mq.ErrMessageTooLarge naming the limit; a
// missing queue with provisioning off is mq.ErrNotFound; a second group or
// Earliest is mq.ErrNotSupported. Rejected credentials or signatures say
// so and name the AWS config chain; an endpoint host that does not resolve
// names the host. Throttling, server faults and network failures are
// mq.IsRetryable; Subscribe rides them out, logging and backing off, and
// returns only for failures retrying cannot fix (the queue deleted,
// permission denied).
//
// # ElasticMQ
//
// The driver's tests run against ElasticMQ 1.7 with persistence on (see
// scripts/brokers). ElasticMQ implements everything the driver uses,
// including tags and redrive policies, with these differences from SQS that
// the driver does not depend on: it counts only the body and String
// attributes toward the 1 MiB limit (SQS counts Binary attributes too), and
// it accepts any credentials and region.
//
// # SNS fan-out
//
// SNSBroker (NewSNS with SNSOptions, or mq.Open with an sns+sqs:// URL)
// delivers every message to every group: each topic is an SNS topic
// (TopicPrefix plus the topic; a FIFO topic when the name ends in ".fifo",
// or for every topic with fifo=true), and each group an SQS queue
// subscribed to the topic with raw message delivery, named by queue_name
// (default "{topic}-{group}", queue_prefix before it, ".fifo" after it for
// FIFO topics). Publish sends to the topic, SNS copies each message to
// every subscribed queue, and Subscribe receives from its group's queue
// with the same code as sqs://: everything Delivery semantics says about
// receiving, settling, visibility, attempts, dead-lettering and FIFO
// order holds unchanged, and so does Message encoding.
//
// It is a scheme of its own, not a parameter of sqs://, because a topic
// names another AWS resource (an SNS topic, not a queue) and groups mean
// something else (one queue each, not one per topic): an sqs:// URL that
// switched to fan-out would send producers' messages to topics that the
// existing consumers' queues are not subscribed to.
//
// # SNS fan-out: URL
//
//	sns+sqs://?region=us-east-1[&param=value...]
//
// Every sqs:// parameter, with these additions and differences:
//
//	topic_prefix       SNS topic name prefix (default none)
//	queue_name         a group's queue name: "{topic}" is replaced by the topic
//	                   (without ".fifo"), "{group}" by the group; both are
//	                   required (default "{topic}-{group}")
//	endpoint           serves SNS and SQS alike (local servers such as moto
//	                   answer both on one port)
//	group              group of Subscribe without mq.Group (default none: a
//	                   Subscribe without a group is mq.ErrInvalidOption)
//	provision          create missing topics, queues, queue policy statements
//	                   and subscriptions on first use (default true); false: a
//	                   missing topic, queue or subscription is mq.ErrNotFound,
//	                   and a subscription without raw message delivery an error
//	                   (Provision still creates)
//	dead_letter_queue  "{group}" is replaced by the group too, e.g.
//	                   "{topic}-{group}-dlq"
//	server_max_bytes   SNS's message size limit (default 262144)
//
// SNSOptions embeds Options for these, and adds SNSClient, TopicPrefix
// and QueueName. Open checks both endpoints with ListQueues and
// ListTopics.
//
// # SNS fan-out: Delivery semantics
//
// Provisioning a group (Provision, or a Subscribe with provisioning on)
// creates what is missing, in this order: the SNS topic (CreateTopic, with
// FifoTopic for FIFO topics); the queue, as sqs:// creates queues; a
// statement in the queue's policy that lets the topic send to it
// (principal service sns.amazonaws.com, action sqs:SendMessage on the
// queue, condition ArnEquals aws:SourceArn the topic's ARN; the policy's
// other statements are kept); and the subscription (protocol sqs,
// RawMessageDelivery true; an existing subscription without raw delivery
// gets it turned on). The policy comes first, so the topic never delivers
// to a queue that refuses it: AWS drops such deliveries. A group receives
// what is published while its subscription exists; SNS drops what is
// published to a topic without subscriptions, and a new group cannot
// replay. On AWS a new subscription can take a moment to take effect.
// With provisioning off the driver looks topics up with ListTopics (SNS
// has no lookup by name) and subscriptions with ListSubscriptionsByTopic.
//
// Publish returns nil once SNS has accepted every message (a successful
// PublishBatch entry: SNS stores it durably before answering), and SNS
// then delivers it to every subscribed queue, retrying by its own delivery
// policy. Messages are batched as for sqs://, in PublishBatch calls of up
// to ten messages and 256 KiB, and entries SNS fails are tried again or
// reported in a *mq.PublishError in the same way. Each message goes out
// encoded as for sqs://, with at most ten message attributes (SNS's limit
// too; more headers are packed) and a non-empty body; the size limit is
// checked before anything is sent. With raw message delivery each queue
// receives the body and attributes as published, so a consumer that does
// not use mq sees what sqs:// would have sent it. On a FIFO topic Key is
// the MessageGroupId and ID the MessageDeduplicationId, which SNS passes
// on to the (FIFO) queues. Message.Delay is mq.ErrNotSupported: SNS has
// no per-message delay.
//
// Backlog (mq.BacklogOf) reads the group's queue as sqs:// does
// (ApproximateNumberOfMessages, NotVisible and Delayed). DeleteGroup
// (mq.DeleteGroup, and `mq tail`'s temporary groups) unsubscribes the
// group's queue from the topic and deletes the queue; the topic and the
// other groups stay.
//
// # SNS fan-out: Capabilities
//
//	FanOut           true: each group is a queue of its own
//	OrderingByKey    true only with fifo=true (as for sqs://)
//	Replay           false
//	NackDelay        true (as for sqs://)
//	DelayedDelivery  false: SNS has no per-message delay
//	Persistent       true
//	MaxMessageBytes  server_max_bytes (default 256 KiB, SNS's limit) minus
//	                 8 KiB kept for mq's attributes
//	MaxHeaders       1000 (as for sqs://)
//
// # SNS fan-out: As
//
// SNSBroker.As accepts a **sns.Client (from
// github.com/aws/aws-sdk-go-v2/service/sns) and a **sqs.Client.
// Message.As on a received message accepts a *types.Message, as for
// sqs://.
//
// # moto
//
// sns+sqs:// is tested against moto 5.2 in server mode (scripts/brokers
// runs it through scripts/moto/server.py, which fixes moto's delivery of
// Binary attributes to raw-delivery queues and speeds up its
// ReceiveMessage). moto delivers SNS publishes to subscribed queues, but
// it does not enforce queue policies (it delivers to a queue whose policy
// does not let the topic send), SNS's limits of ten message attributes
// and 256 KiB per PublishBatch call, or SNS's refusal of an empty
// message: the driver's tests check what it sends for each of these.
// The sqs:// conformance suite runs on moto's SQS too. As an SQS server
// moto accepts more than ten message attributes and bodies with
// characters SQS refuses (ElasticMQ refuses both, as SQS does), and its
// long poll treats the FIFO message groups in flight when it began as in
// flight until it ends, so the tests' FIFO runs on moto use a short
// wait_time. moto keeps its state in memory only, so the broker-restart
// conformance case runs on ElasticMQ and not on moto.
package sqs
