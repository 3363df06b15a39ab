// Command mqbench measures mq against the raw client libraries it is built
// on, against Watermill and against gocloud.dev/pubsub, on the same brokers
// in the same run, and writes the results as JSON lines plus the Markdown
// report BENCHMARKS.md at the repository root.
//
// It lives in a Go module of its own (github.com/seedmq/mq/benchmarks), so
// Watermill, Sarama and gocloud.dev never enter mq's own requirements.
//
// # Usage
//
// From the repository root, with the brokers of scripts/brokers:
//
//	make bench        # the full matrix (about half an hour on 2 cores)
//	make bench-short  # 1 KiB, concurrency 4, 2 rounds: under 5 minutes
//
// or by hand:
//
//	eval "$(scripts/brokers env)"
//	cd benchmarks && go run ./cmd/mqbench [flags]
//
// Flags (defaults in parentheses):
//
//	-short             quick check: 1 KiB, concurrency 4, 2 rounds, 3 s latency runs (false)
//	-brokers LIST      brokers to measure (memory,kafka,rabbitmq,sqs)
//	-rounds N          paired rounds per cell (3; -short 2)
//	-ratio-rounds N    paired rounds per cell of raw, raw+contract, mq,
//	                   franz-go-consume, franz-go and sarama, whose ratios
//	                   are the targets (7; -short 2; at least -rounds)
//	-sizes LIST        body sizes in bytes (16,1024,65536; -short 1024)
//	-conc LIST         concurrency levels (1,4,16; -short 4)
//	-latency BOOL      run the open-loop latency measurement (true)
//	-lone-rounds N     paired rounds of the lone-Publish measurement on Kafka (7; -short 2; 0: none)
//	-lone-calls N      Publish calls per lone-Publish run (500; -short 200)
//	-latency-duration  length of each latency run (10s; -short 3s)
//	-scale F           multiply every run's message count (1)
//	-contenders RE     measure only contenders whose name matches RE (all)
//	-out DIR           directory of the results files (results, git-ignored)
//	-report FILE       Markdown report to write, "" for none (../BENCHMARKS.md)
//	-report-from LIST  only regenerate the report from results files
//	                   (comma-separated; a later file's rounds are numbered after
//	                   the earlier ones', so a run of extra rounds can be added)
//	-machine-note TEXT conditions of the run, printed at the top of the report
//	-notes FILE        Markdown included after the targets, if the file exists (notes.md)
//	-cpuprofile FILE   CPU profile of the whole run, for go tool pprof
//	-consume-only      throughput runs time the consumer alone: the timed
//	                   messages are published first while the consumer waits,
//	                   and the time and CPU run from its release (false)
//
// Brokers are found through the variables scripts/brokers env prints:
// MQ_TEST_KAFKA_ADDR, MQ_TEST_AMQP_URL, MQ_TEST_SQS_ENDPOINT and
// MQ_TEST_SQS_REGION (plus AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// for ElasticMQ). A broker whose variable is unset is reported as "n/a"
// with the reason, never skipped silently.
//
// # Contenders
//
// Per broker: "raw", the client library used directly and tuned by its own
// best practice (kafka-go Writer with a 1ms BatchTimeout and a group Reader
// with FetchMessage and batched CommitMessages; amqp091-go with one
// confirm-mode channel per publisher and prefetch of at least 100;
// aws-sdk-go-v2 with SendMessageBatch, ReceiveMessage of ten and concurrent
// receivers); "mq" with the same settings; "mq+mw-noop" and "mq+mw-otel",
// mq wrapped in package middleware's recommended stack with no-op
// OpenTelemetry providers and with the real SDK; and Watermill's driver
// for the broker with its defaults and tuned. On Kafka also the producers
// a Kafka user would pick instead: franz-go (kgo ProduceSync, its default
// linger and snappy compression, acks=all) and Sarama (SyncProducer,
// acks=all), each consumed by raw's kafka-go Reader so that only the
// producer differs; "mq+snappy", mq with compression=snappy, which
// compares with franz-go like with like (the others send uncompressed);
// and
// "franz-go-consume", raw's producer with a franz-go group consumer (a
// PollFetches loop marking records, marked offsets committed every
// 100ms, mq's default commit interval), so that only the consumer differs:
// the report divides mq by it per round as well. The report's Kafka
// producer targets divide mq per round by the faster of franz-go and
// Sarama at concurrency 1, by franz-go at concurrency 16 (and mq+snappy
// by franz-go there), by raw in CPU
// per message, and mq's lone Publish p50 by each reference's. On the
// memory broker: a buffered channel (the floor), mq's memory driver,
// Watermill's GoChannel and gocloud's mempubsub. On every broker, with MQ_TEST_POSTGRES_DSN set
// (scripts/brokers env): "mq+outbox", each Publish call one PostgreSQL
// transaction through package outbox and an outbox.Relay forwarding to
// the broker, and "watermill-sql-forwarder", the same through
// watermill-sql and Watermill's forwarder into the same mq broker; their
// "-drain" variants write the timed messages first and time only the
// forwarding (see holder). The report describes each contender's set-up.
//
// # Method
//
// Throughput runs are grouped in cells (broker, body size, concurrency).
// Each round runs every contender of the cell once, each on a fresh topic,
// the order reversed every other round; the rounds past -rounds, up to
// -ratio-rounds, run only the contenders of the targets' ratios, whose
// single rounds move by 10-30 % on a small machine. A run publishes and consumes
// warm-up messages first, then times N messages from the first publish
// until the consumer has handled the last one, reading the process's CPU
// time (getrusage) and allocation count (runtime.MemStats) before and
// after. The mq/raw ratios are taken per round, then summarized by median
// and range.
//
// Lone-Publish runs (Kafka) measure the call a service makes when it
// publishes one event per request: one publisher, one 1 KiB message per
// call, each call after the previous returned; they report the Publish
// call's p50 and p99 and the end-to-end p50, in paired rounds.
//
// Latency runs publish open loop at a fixed rate below saturation, the
// scheduled send time in a header, and report p50, p99 and p99.9 of the
// end-to-end latency and of the Publish call.
//
// # Output
//
// Each run appends to results/<time>-<mode>.jsonl: one "machine" line
// (machine, versions, configuration), one "contender" line per contender,
// and one "throughput" or "latency" line per run, with an "error" field
// when the run failed (or "n/a: reason" when it could not run). The report
// is generated from that file alone.
package main
