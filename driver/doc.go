// Package driver is what an mq driver is written against, in the way
// database/sql drivers are written against database/sql/driver. Services
// never import it: they use package mq and a driver's blank import.
//
// Every driver in this module (kafka, rabbitmq, sqs, memory) is built on
// this package and on package mq alone, so a driver in another module,
// for NATS JetStream, Google Pub/Sub or Redis Streams, can do everything
// they do, Message.As included.
//
// # What it provides
//
//   - SubscribeConfig and NewSubscribeConfig: a Subscribe call's options
//     with the defaults applied and validated, RedeliveryDelay, and
//     SetConnected and SetAssigned, which report the subscription's state
//     to mq.WatchState.
//   - StartSubscribe and CheckPublish: the checks every Subscribe and
//     Publish make first, in the same order on every driver.
//   - PrepareMessages, Limits, LimitsOf and ValidateName: message and
//     name validation before anything is sent.
//   - Dispatcher: runs the handler with the concurrency limit, ordering
//     lanes (one key at a time, in order), panic recovery, in-place
//     retry and a draining Shutdown.
//   - Classify, with its Outcomes Ack, Release, Reject and Retry: the one
//     mapping from a handler's result (nil, ErrNotHandled, mq.Permanent,
//     mq.RetryAfter, any error) to what the driver does with the message,
//     and LogDropped and LogDeadLettered for the permanent-failure policy.
//   - Lifecycle: the open / closing / closed state, calls and goroutines
//     Close waits for, and the context that bounds draining.
//   - Params: strict URL query parameters, the names every driver shares
//     (group, provision, max_message_bytes, tls and tls_*), and Renamed
//     for a spelling that changed.
//   - TLSFiles: a TLS client configuration from PEM files.
//   - SetNative: the broker's own delivery behind Message.As.
//   - Retryable: marks an error mq.IsRetryable reports true for.
//
// # Writing a driver
//
// A driver for a broker named "acme" lives in its own package, say
// example.com/mqacme, and follows these steps.
//
// 1. Options and a constructor. Declare an Options struct whose zero
// value is a working default, document each default, and a constructor
// with the same shape as every other driver's:
//
//	const Scheme = "acme"
//
//	type Options struct {
//		Group       string // default group of Subscribe calls without mq.Group
//		NoProvision bool   // use existing topics only
//		// ... the broker's own settings
//	}
//
//	func New(ctx context.Context, opts Options) (*Broker, error)
//
// Invalid options are an error wrapping mq.ErrInvalidOption.
//
// 2. The URL. Register the scheme in an init function and read the query
// with Params, so that unknown, repeated and malformed parameters are
// errors naming the parameter and its fix:
//
//	func init() { mq.Register(Scheme, open) }
//
//	func open(ctx context.Context, u *url.URL) (mq.Broker, error) {
//		p := driver.NewParams("acme", u)
//		opts := Options{Group: p.Group(), NoProvision: !p.Provision()}
//		files, useTLS := p.TLS(false)
//		if err := p.Err(); err != nil {
//			return nil, err
//		}
//		// files.Config("acme") when useTLS ...
//		return New(ctx, opts)
//	}
//
// Name parameters in snake_case after the Options field they set, and use
// the shared names for the shared settings. Never put a URL's user info in
// an error or a log line; print Redact(u) if the URL must be shown.
//
// 3. The Broker. Embed or hold a Lifecycle and return Capabilities that
// say honestly what the broker can do; anything it cannot do is
// mq.ErrNotSupported where it would be used, never silently something
// else. Close drains and releases:
//
//	func (b *Broker) Close(ctx context.Context) error {
//		return b.life.Close(ctx, func(ctx context.Context) error {
//			return b.conn.Close() // after every Subscribe has returned
//		})
//	}
//
// 4. Publish. Check first, then send, and return nil only once the
// broker has durably accepted every message:
//
//	func (b *Broker) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
//		if err := driver.CheckPublish(&b.life, topic, msgs, driver.LimitsOf(b.Capabilities())); err != nil {
//			return err
//		}
//		// add the broker's own checks (key length, name rules), then
//		// send; batch what arrives while a request is in flight.
//	}
//
// Mark failures that may pass when repeated with Retryable, and report a
// partial failure with *mq.PublishError.
//
// 5. Subscribe. Start with StartSubscribe, run the handler through a
// Dispatcher, and settle each delivery with Classify:
//
//	func (b *Broker) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
//		cfg, exit, err := driver.StartSubscribe(&b.life, topic, h, b.opts.Group, mq.Latest, opts)
//		if err != nil {
//			return err
//		}
//		defer exit()
//		d := driver.NewDispatcher(ctx, h, driver.DispatcherConfig{Concurrency: cfg.Concurrency})
//		// receive loop: for each native delivery n,
//		//	m := &mq.Message{ID: ..., Body: ..., Header: map[string]string{...},
//		//		Topic: topic, Group: cfg.Group, Attempt: ...}
//		//	driver.SetNative(m, n)
//		//	d.Submit(ctx, &driver.Delivery{Msg: m, Lane: m.Key, Settler: settler(n)})
//		// until ctx ends (return ctx.Err()) or b.life.Closing() fires
//		// (drain with d.Shutdown(b.life.DrainContext()), return mq.ErrClosed).
//	}
//
// where settler(n)'s Settle does what Classify says:
//
//	switch outcome, delay := cfg.Classify(m.Attempt, err); outcome {
//	case driver.Ack:     // acknowledge
//	case driver.Release: // make it available again now, no attempt counted
//	case driver.Reject:  // broker's dead-letter target, or driver.LogDropped
//	case driver.Retry:   // redeliver after delay, with Attempt + 1
//	}
//
// Give Lane only where the broker keeps per-key order (OrderingByKey);
// leave it empty for unordered deliveries.
//
// Report the subscription's state where the receive loop already changes
// it: cfg.SetConnected(true) once consuming (again), cfg.SetConnected(false)
// when the connection, consumer or membership is lost, and on brokers with
// partitions cfg.SetAssigned(n) when an assignment starts and
// cfg.SetAssigned(0) when it ends. exit reports false when Subscribe
// returns. Health probes (middleware.Health) read these through
// mq.WatchState.
//
// 6. The package doc. Give it the headings every driver's doc has: URL
// (each parameter and its default), Delivery semantics, Capabilities,
// Interoperability (how native fields map to mq.Message, for messages
// from producers that are not mq) and As (the types As accepts).
//
// 7. Conformance. Run the suite of package
// github.com/seedmq/mq/conformance against a real broker, with -race:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			Open: func(ctx context.Context) (mq.Broker, error) {
//				return mq.Open(ctx, "acme://127.0.0.1:4222")
//			},
//			OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
//				return mq.Open(ctx, "acme://127.0.0.1:4222?provision=false")
//			},
//		})
//	}
//
// Every case the driver's Capabilities allow must pass; the others skip
// by capability name. The memory driver (package
// github.com/seedmq/mq/memory) is a complete driver written on this
// package alone, and a short one to read first.
package driver
