// Command mq looks at a message broker through the same URL a service
// uses: it publishes, tails, shows a group's lag, replays, moves dead
// letters back, provisions, pings, and runs the conformance suite, on
// Kafka, RabbitMQ, SQS (sqs:// and sns+sqs://) and the memory broker
// alike.
//
// Install it with:
//
//	go install github.com/seedmq/mq/cmd/mq@latest
//
// Usage:
//
//	mq publish   URL TOPIC [BODY]      publish messages and print their IDs
//	mq tail      URL TOPIC             print a topic's messages as they arrive
//	mq lag       URL TOPIC GROUP       a group's backlog, once or live (--watch)
//	mq ping      URL                   health check and capabilities
//	mq provision URL TOPIC [GROUP...]  create a topic and groups ahead of time
//	mq redrive   URL DLQ               move dead letters back (filters, --dry-run)
//	mq replay    URL TOPIC [FILE]      publish what tail --json recorded, or a topic's history
//	mq conform   URL                   run the conformance suite, print a pass/skip/fail table
//
// Every command has --help, with examples. Flags may come before or
// after the arguments. URL may be env:NAME, to read it from the
// environment variable NAME and keep a password off the command line;
// URLs are printed with their user info replaced by "***", and the user
// name and password of the URL are scrubbed from every message mq
// prints. --json makes the output JSON lines for scripts. Long runs
// report progress and rates on standard error when it is a terminal (or
// with --progress). Ctrl-C stops cleanly: a tail removes its temporary
// group, a publish stops after the messages in flight, and the broker is
// closed gracefully; a second Ctrl-C exits at once.
//
// tail never takes messages from a service's group unless told to: it
// reads through a temporary group it removes when it stops (on
// sns+sqs://, a queue subscribed to the topic for the purpose). On brokers
// without fan-out (sqs://) it refuses, and --group NAME reads, and
// consumes, through that group.
//
// lag prints what the broker counts and, on a line starting "note:",
// what it cannot: on RabbitMQ, unacknowledged messages and those waiting
// for a nack delay are counted only when the URL names the management
// plugin's API (management=http://host:15672).
//
// # Exit codes
//
//	0    done (tail and lag --watch: also when stopped with Ctrl-C)
//	1    failed: broker error, messages not accepted, conformance failures
//	2    usage: bad flags, arguments or URL
//	3    not supported by this broker (mq.ErrNotSupported)
//	4    not found: topic, group or queue does not exist (mq.ErrNotFound)
//	5    lag --max: the backlog is above the threshold
//	130  interrupted by Ctrl-C or SIGTERM before the work was done
//
// # conform
//
// mq conform runs package conformance, which needs a *testing.T: mq runs
// itself as a child process that calls testing.Main (the testing
// package's entry point kept for programs that run tests outside go
// test) with -test.v, and reads the results from its output. So the
// suite checks exactly what go test would, and its goroutine-leak checks
// see only its own process.
package main
