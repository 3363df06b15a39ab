// Signup shows why a service publishes a message instead of calling
// another service: the sign-up API answers at once, and the email service
// finds every sign-up waiting for it, even those made while it was down.
//
// The API publishes a user-signed-up message per sign-up. The email
// service consumes them in its own group and sends one welcome email per
// user, skipping redelivered duplicates (delivery is at-least-once). Half
// way through, the email service goes down; sign-ups keep coming, wait in
// the broker, and are worked off when it comes back.
//
// Run it on the in-process memory broker:
//
//	go run ./examples/signup
//
// or on a real broker, by URL (see each driver's package documentation):
//
//	MQ_URL=kafka://127.0.0.1:9092 go run ./examples/signup
//	MQ_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/signup
//	MQ_URL='sqs://?endpoint=http://127.0.0.1:9324&region=elasticmq' go run ./examples/signup
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/seedmq/mq"
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

	cfg := config{Prefix: runPrefix(), Before: 5, During: 20}
	if _, err := run(ctx, *url, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "signup:", err)
		os.Exit(1)
	}
}

// config sizes one run.
type config struct {
	// Prefix starts every topic and group name, so that runs sharing a
	// real broker do not see each other's messages.
	Prefix string
	// Before is how many users sign up while the email service runs.
	Before int
	// During is how many sign up while it is down.
	During int
}

// result is what a run counted.
type result struct {
	SignedUp   int // sign-ups the API accepted
	Sent       int // distinct users who got a welcome email
	Duplicates int // redelivered sign-ups the email service skipped
}

// signedUp is the body of a user-signed-up message.
type signedUp struct {
	User  string `json:"user"`
	Email string `json:"email"`
}

func run(ctx context.Context, url string, out io.Writer, cfg config) (res result, err error) {
	b, err := mq.Open(ctx, url)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeBroker(ctx, b)) }()

	topic, group := cfg.Prefix+"user-signed-up", cfg.Prefix+"email"
	// Create the email service's group before the first sign-up: from now
	// on the broker keeps every sign-up for it, whether it runs or not.
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "broker %s: topic %s, group %s\n", b.Capabilities().Driver, topic, group)

	email := newEmailService()
	signUp := func(n int) (time.Duration, error) {
		var total time.Duration
		for range n {
			user := fmt.Sprintf("user-%03d", res.SignedUp+1)
			body, _ := json.Marshal(signedUp{User: user, Email: user + "@example.com"})
			start := time.Now()
			// This is all the API does: publish, then answer the user.
			if err := b.Publish(ctx, topic, &mq.Message{Key: user, Body: body}); err != nil {
				return 0, fmt.Errorf("sign-up of %s: %w", user, err)
			}
			total += time.Since(start)
			res.SignedUp++
		}
		return total / time.Duration(max(n, 1)), nil
	}

	// 1. Everything is up.
	svc := mq.Start(ctx, b, topic, email.handle, mq.Group(group))
	if _, err := signUp(cfg.Before); err != nil {
		return res, errors.Join(err, svc.Stop())
	}
	if err := email.waitFor(ctx, svc, res.SignedUp); err != nil {
		svc.Stop() // the error says why already
		return res, err
	}
	fmt.Fprintf(out, "email service up:   %d users signed up, %d welcome emails sent\n", res.SignedUp, email.sentCount())

	// 2. The email service goes down; the API keeps answering.
	if err := svc.Stop(); err != nil {
		return res, err
	}
	took, err := signUp(cfg.During)
	if err != nil {
		return res, err
	}
	waiting := res.SignedUp - email.sentCount()
	fmt.Fprintf(out, "email service down: %d more users signed up (the API answered each in %v on average); %d sign-ups wait in the broker\n",
		cfg.During, roundDuration(took), waiting)

	// 3. It comes back and works off the backlog.
	start := time.Now()
	svc = mq.Start(ctx, b, topic, email.handle, mq.Group(group))
	if err := email.waitFor(ctx, svc, res.SignedUp); err != nil {
		svc.Stop()
		return res, err
	}
	if err := svc.Stop(); err != nil {
		return res, err
	}
	res.Sent, res.Duplicates = email.sentCount(), email.duplicateCount()
	fmt.Fprintf(out, "email service back: sent the %d waiting emails in %v\n", waiting, roundDuration(time.Since(start)))
	fmt.Fprintf(out, "done: %d users signed up, %d welcome emails sent, %d duplicate deliveries skipped\n",
		res.SignedUp, res.Sent, res.Duplicates)
	return res, nil
}

// emailService sends one welcome email per user. It remembers whom it
// wrote to, so a redelivered sign-up does not send a second email.
type emailService struct {
	mu         sync.Mutex
	sent       map[string]bool // by user
	duplicates int
	changed    chan struct{} // signalled after each message
}

func newEmailService() *emailService {
	return &emailService{sent: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (s *emailService) handle(ctx context.Context, m *mq.Message) error {
	var u signedUp
	if err := json.Unmarshal(m.Body, &u); err != nil {
		return mq.Permanent(fmt.Errorf("bad sign-up %s: %w", m.ID, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent[u.User] {
		s.duplicates++
	} else {
		s.sent[u.User] = true // a real service would send the email here
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return nil
}

func (s *emailService) sentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

func (s *emailService) duplicateCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duplicates
}

// waitFor returns once n users got their email, or with an error when ctx
// ends or the subscription stops first.
func (s *emailService) waitFor(ctx context.Context, sub *mq.Subscription, n int) error {
	for s.sentCount() < n {
		select {
		case <-s.changed:
		case <-sub.Done():
			return fmt.Errorf("email service stopped: %w", sub.Err())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d emails, %d sent: %w", n, s.sentCount(), ctx.Err())
		}
	}
	return nil
}

// closeBroker closes b, waiting at most ten seconds for in-flight work.
func closeBroker(ctx context.Context, b mq.Broker) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return b.Close(ctx)
}

// roundDuration keeps two or three significant digits.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// runPrefix returns a name prefix unique to this run.
func runPrefix() string {
	return "signup-" + strings.ToLower(rand.Text()[:6]) + "-"
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
