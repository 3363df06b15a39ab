// Deadletter shows what happens to a message a service cannot process: it
// is retried, then moved aside to a dead-letter topic with the reason, so
// it stops blocking and is not lost; once the bug is fixed, it is moved
// back (redriven) and processed.
//
// The billing service handles invoices with the dead-letter middleware.
// The invoice number travels as the message Key, which dead-lettering and
// redrive keep (a redriven message may get a new message ID).
// Its first version has a bug, it cannot bill in CHF: that invoice fails
// on each delivery and, after three attempts, goes to the dead-letter
// topic with reason "max-attempts" and the error. Another invoice is not
// even JSON: the handler says so with mq.Permanent, and it is
// dead-lettered at once, reason "permanent". Version two fixes the CHF
// bug; a redrive then moves the dead letters the fix addresses back to
// the invoices topic, where they are billed. The malformed invoice stays
// in the dead-letter topic for a person to look at.
//
// Run it on the in-process memory broker:
//
//	go run ./examples/deadletter
//
// or on a real broker, by URL (see each driver's package documentation):
//
//	MQ_URL=kafka://127.0.0.1:9092 go run ./examples/deadletter
//	MQ_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/deadletter
//	MQ_URL='sqs://?endpoint=http://127.0.0.1:9324&region=elasticmq' go run ./examples/deadletter
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"

	_ "github.com/seedmq/mq/kafka"    // registers kafka://
	_ "github.com/seedmq/mq/memory"   // registers mem://
	_ "github.com/seedmq/mq/rabbitmq" // registers amqp:// and amqps://
	_ "github.com/seedmq/mq/sqs"      // registers sqs://
)

func main() {
	url := flag.String("url", envOr("MQ_URL", "mem://"), "broker URL (default $MQ_URL, else mem://)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	cfg := config{Prefix: "deadletter-" + strings.ToLower(rand.Text()[:6]) + "-"}
	if _, err := run(ctx, *url, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "deadletter:", err)
		os.Exit(1)
	}
}

// config configures one run.
type config struct {
	// Prefix starts every topic and group name, so that runs sharing a
	// real broker do not see each other's messages.
	Prefix string
}

// result is what a run counted.
type result struct {
	Invoices     int // invoices published
	Billed       int // distinct invoices billed
	DeadLettered int // distinct invoices dead-lettered
	Redriven     int // dead letters moved back
	// Reasons maps each dead-lettered invoice to its dead-letter reason.
	Reasons map[string]string
}

// invoice is the body of an invoice message.
type invoice struct {
	Customer string `json:"customer"`
	Amount   int    `json:"amount_cents"`
	Currency string `json:"currency"`
}

// maxAttempts is how many deliveries an invoice gets before it is
// dead-lettered.
const maxAttempts = 3

func run(ctx context.Context, url string, out io.Writer, cfg config) (res result, err error) {
	b, err := mq.Open(ctx, url)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeBroker(ctx, b)) }()
	out = &lockedWriter{w: out} // handlers print too

	topic, group := cfg.Prefix+"invoices", cfg.Prefix+"billing"
	dlq, dlqGroup := middleware.DeadLetterTopic(topic), cfg.Prefix+"billing-redrive"
	// The dead-letter topic is a topic like any other: create it, with
	// the group that will read it, before any message fails.
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		return res, err
	}
	if err := mq.Provision(ctx, b, dlq, dlqGroup); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "broker %s: topic %s, dead letters to %s\n", b.Capabilities().Driver, topic, dlq)
	short := func(name string) string { return strings.TrimPrefix(name, cfg.Prefix) }

	billing := &billingService{out: out, billed: map[string]bool{}, reasons: map[string]string{}, changed: make(chan struct{}, 1)}
	// Report each dead letter as an alert would: wrap the publisher the
	// dead-letter middleware uses.
	alerts := func(next middleware.PublishFunc) middleware.PublishFunc {
		return func(ctx context.Context, topic string, msgs ...*mq.Message) error {
			err := next(ctx, topic, msgs...)
			if err == nil {
				for _, m := range msgs {
					fmt.Fprintf(out, "  dead-lettered %s to %s: reason %s, attempt %s, error %q\n", m.Key, short(topic),
						m.Header[middleware.HeaderReason], m.Header[middleware.HeaderAttempts], m.Header[middleware.HeaderError])
					billing.deadLettered(m.Key, m.Header[middleware.HeaderReason])
				}
			}
			return err
		}
	}
	deadLetter := middleware.DeadLetter(middleware.DeadLetterOptions{
		Publisher:   middleware.WrapPublisher(b, alerts),
		MaxAttempts: maxAttempts,
	})
	opts := []mq.SubscribeOption{mq.Group(group), mq.Backoff(mq.ExponentialBackoff(50*time.Millisecond, time.Second))}

	// Version 1, with the CHF bug.
	fmt.Fprintln(out, "billing v1 (cannot bill in CHF) is running")
	v1 := mq.Start(ctx, b, topic, deadLetter(billing.handler("v1", "EUR", "USD")), opts...)
	invoices := []struct {
		id   string
		body string
	}{
		{"invoice-001", `{"customer":"acme","amount_cents":12000,"currency":"EUR"}`},
		{"invoice-002", `{"customer":"globex","amount_cents":9900,"currency":"USD"}`},
		{"invoice-003", `{"customer":"initech","amount_cents":45000,"currency":"CHF"}`},
		{"invoice-004", `{"customer":"umbrella","amount_cents":700,"currency":"EUR"}`},
		{"invoice-005", `{"customer":"hooli", oops`},
	}
	for _, inv := range invoices {
		if err := b.Publish(ctx, topic, &mq.Message{Key: inv.id, Body: []byte(inv.body)}); err != nil {
			v1.Stop()
			return res, fmt.Errorf("publish %s: %w", inv.id, err)
		}
		res.Invoices++
	}
	// Three invoices are fine; two become dead letters.
	if err := billing.waitFor(ctx, v1, 3, 2); err != nil {
		v1.Stop()
		return res, err
	}
	if err := v1.Stop(); err != nil {
		return res, err
	}

	// The fix ships: version 2 bills in CHF too.
	fmt.Fprintln(out, "billing v2 (CHF fixed) replaces v1")
	v2 := mq.Start(ctx, b, topic, deadLetter(billing.handler("v2", "EUR", "USD", "CHF")), opts...)
	defer func() {
		if serr := v2.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	// Redrive the dead letters the fix addresses; leave the malformed one.
	res.Reasons = billing.deadLetters()
	res.DeadLettered = len(res.Reasons)
	fixable := 0
	for _, reason := range res.Reasons {
		if reason == middleware.ReasonMaxAttempts {
			fixable++
		}
	}
	res.Redriven, err = middleware.Redrive(ctx, b, dlq, middleware.RedriveOptions{
		Group: dlqGroup,
		Filter: func(m *mq.Message) bool {
			reason := m.Header[middleware.HeaderReason]
			if reason != middleware.ReasonMaxAttempts {
				fmt.Fprintf(out, "  redrive: %s (%s) stays\n", m.Key, reason)
				return false
			}
			fmt.Fprintf(out, "  redrive: %s (%s) moves back to %s\n", m.Key, reason, short(topic))
			return true
		},
		Limit: fixable,
		Idle:  30 * time.Second, // only a bound: Limit ends the run as soon as the fixable ones moved
	})
	if err != nil {
		return res, fmt.Errorf("redrive: %w", err)
	}
	fmt.Fprintf(out, "redrive moved %d dead letter(s) back; what the fix cannot help stays in %s\n", res.Redriven, short(dlq))
	if err := billing.waitFor(ctx, v2, 3+res.Redriven, 2); err != nil {
		return res, err
	}
	res.Billed = billing.billedCount()
	fmt.Fprintf(out, "done: %d of %d invoices billed, %d dead-lettered, %d redriven and billed, %d left for a person to look at\n",
		res.Billed, res.Invoices, res.DeadLettered, res.Redriven, res.DeadLettered-res.Redriven)
	return res, nil
}

// billingService bills invoices, once each.
type billingService struct {
	out io.Writer

	mu      sync.Mutex
	billed  map[string]bool   // by invoice number
	reasons map[string]string // dead-letter reason by invoice number
	changed chan struct{}     // signalled after each change
}

// handler returns the handler of one version of the service, which bills
// in the given currencies only.
func (s *billingService) handler(version string, currencies ...string) mq.Handler {
	return func(ctx context.Context, m *mq.Message) error {
		var inv invoice
		if err := json.Unmarshal(m.Body, &inv); err != nil {
			// No retry can fix this message: say so.
			fmt.Fprintf(s.out, "  %s: %s is not an invoice (%v): no retry can fix that\n", version, m.Key, err)
			return mq.Permanent(fmt.Errorf("not an invoice: %w", err))
		}
		supported := false
		for _, c := range currencies {
			supported = supported || c == inv.Currency
		}
		if !supported {
			fmt.Fprintf(s.out, "  %s: %s attempt %d failed: cannot bill in %s\n", version, m.Key, m.Attempt, inv.Currency)
			return fmt.Errorf("cannot bill in %s", inv.Currency)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.billed[m.Key] { // once per invoice, however often it is delivered
			s.billed[m.Key] = true
			fmt.Fprintf(s.out, "  %s: billed %s: %s, %d.%02d %s\n", version, m.Key, inv.Customer, inv.Amount/100, inv.Amount%100, inv.Currency)
		}
		s.signal()
		return nil
	}
}

func (s *billingService) deadLettered(id, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reasons[id] = reason
	s.signal()
}

func (s *billingService) deadLetters() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.reasons)
}

func (s *billingService) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *billingService) billedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.billed)
}

// waitFor returns once billed invoices and dead letters reached the given
// counts, or with an error when ctx ends or the subscription stops first.
func (s *billingService) waitFor(ctx context.Context, sub *mq.Subscription, billed, dead int) error {
	for {
		s.mu.Lock()
		gotBilled, gotDead := len(s.billed), len(s.reasons)
		s.mu.Unlock()
		if gotBilled >= billed && gotDead >= dead {
			return nil
		}
		select {
		case <-s.changed:
		case <-sub.Done():
			return fmt.Errorf("billing service stopped: %w", sub.Err())
		case <-ctx.Done():
			return fmt.Errorf("%d of %d invoices billed, %d of %d dead-lettered: %w", gotBilled, billed, gotDead, dead, ctx.Err())
		}
	}
}

// lockedWriter serializes writes from concurrent handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// closeBroker closes b, waiting at most ten seconds for in-flight work.
func closeBroker(ctx context.Context, b mq.Broker) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return b.Close(ctx)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
