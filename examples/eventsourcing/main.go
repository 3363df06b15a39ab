// Eventsourcing keeps the history of bank accounts as events appended to
// a topic, the source of truth, and rebuilds state from it: a brand-new
// projection (a new read model, or a lost one) replays every event from
// the start and arrives at the same balances as the live projection that
// followed along.
//
// Events carry a per-account sequence number and the account as their
// Key, so a projection applies each account's events in order and skips
// a redelivered event it has already applied.
//
// Replay needs a broker that keeps history for new consumer groups
// (mq.StartAt(mq.Earliest)): memory and Kafka do. RabbitMQ and SQS delete
// a message once it is consumed, so there the example says so and exits
// with status 1.
//
// Run it on the in-process memory broker:
//
//	go run ./examples/eventsourcing
//
// or on Kafka, by URL (see the kafka package documentation):
//
//	MQ_URL=kafka://127.0.0.1:9092 go run ./examples/eventsourcing
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
	"slices"
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

	cfg := config{Prefix: "eventsourcing-" + strings.ToLower(rand.Text()[:6]) + "-", Events: 30}
	if _, err := run(ctx, *url, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "eventsourcing:", err)
		os.Exit(1)
	}
}

// config sizes one run.
type config struct {
	// Prefix starts every topic and group name, so that runs sharing a
	// real broker do not see each other's messages.
	Prefix string
	// Events is how many account events are appended.
	Events int
}

// result holds both projections' balances.
type result struct {
	Appended int
	Live     map[string]int // balances the live projection computed
	Rebuilt  map[string]int // balances the replay computed
}

// event is one fact about an account. Seq numbers an account's events
// from 1.
type event struct {
	Account string `json:"account"`
	Seq     int    `json:"seq"`
	Type    string `json:"type"` // opened, deposited or withdrawn
	Amount  int    `json:"amount"`
}

func run(ctx context.Context, url string, out io.Writer, cfg config) (res result, err error) {
	b, err := mq.Open(ctx, url)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeBroker(ctx, b)) }()

	// Fail at start-up, clearly, on a broker that cannot replay.
	if err := mq.Require(b, mq.CapReplay, mq.CapOrderingByKey); err != nil {
		return res, fmt.Errorf("%w: rebuilding state needs the full history, replayed in order (memory and Kafka keep it; RabbitMQ and SQS delete consumed messages)", err)
	}

	topic := cfg.Prefix + "account-events"
	const live, rebuilt = "balances-v1", "balances-v2" // group names, after the prefix
	fmt.Fprintf(out, "broker %s: topic %s\n", b.Capabilities().Driver, topic)

	// The live projection exists before the first event and follows along.
	if err := mq.Provision(ctx, b, topic, cfg.Prefix+live); err != nil {
		return res, err
	}
	v1 := newProjection()
	sub := mq.Start(ctx, b, topic, v1.apply, mq.Group(cfg.Prefix+live))
	defer func() {
		if serr := sub.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	// Append the history.
	for _, e := range history(cfg.Events) {
		body, _ := json.Marshal(e)
		if err := b.Publish(ctx, topic, &mq.Message{Key: e.Account, Body: body}); err != nil {
			return res, fmt.Errorf("append %s #%d: %w", e.Account, e.Seq, err)
		}
		res.Appended++
	}
	if err := v1.waitFor(ctx, sub, res.Appended); err != nil {
		return res, fmt.Errorf("live projection: %w", err)
	}
	res.Live = v1.balances()
	fmt.Fprintf(out, "appended %d events; the live projection (group %s) applied them as they came:\n", res.Appended, live)
	v1.print(out)

	// A new projection: a group that does not exist yet, starting at the
	// earliest event the topic holds. (Not provisioned: Provision would
	// create it starting at the latest.)
	v2 := newProjection()
	replay := mq.Start(ctx, b, topic, v2.apply, mq.Group(cfg.Prefix+rebuilt), mq.StartAt(mq.Earliest))
	start := time.Now()
	err = v2.waitFor(ctx, replay, res.Appended)
	if err := errors.Join(err, replay.Stop()); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	res.Rebuilt = v2.balances()
	fmt.Fprintf(out, "a new projection (group %s, StartAt(Earliest)) replayed all %d events from the start in %v:\n",
		rebuilt, res.Appended, roundDuration(time.Since(start)))
	v2.print(out)

	if !maps.Equal(res.Live, res.Rebuilt) {
		return res, fmt.Errorf("rebuilt balances %v differ from the live ones %v", res.Rebuilt, res.Live)
	}
	fmt.Fprintf(out, "rebuilt state matches the live projection for all %d accounts\n", len(res.Rebuilt))
	return res, nil
}

// history returns n account events: three accounts opened, then deposits
// and withdrawals, each account's events numbered from 1.
func history(n int) []event {
	accounts := []string{"alice", "bob", "carol"}
	seq := map[string]int{}
	var events []event
	for i := range n {
		a := accounts[i%len(accounts)]
		seq[a]++
		e := event{Account: a, Seq: seq[a], Type: "deposited", Amount: 10 * (1 + i%7)}
		switch {
		case seq[a] == 1:
			e.Type, e.Amount = "opened", 0
		case i%4 == 3:
			e.Type, e.Amount = "withdrawn", 5*(1+i%3)
		}
		events = append(events, e)
	}
	return events
}

// projection is a read model: each account's balance, built by applying
// its events in order.
type projection struct {
	mu      sync.Mutex
	balance map[string]int
	seq     map[string]int // last applied Seq per account
	applied int
	changed chan struct{}
}

func newProjection() *projection {
	return &projection{balance: map[string]int{}, seq: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (p *projection) apply(ctx context.Context, m *mq.Message) error {
	var e event
	if err := json.Unmarshal(m.Body, &e); err != nil {
		return mq.Permanent(fmt.Errorf("bad event %s: %w", m.ID, err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch last := p.seq[e.Account]; {
	case e.Seq <= last:
		return nil // applied already: a redelivery
	case e.Seq > last+1:
		// Events of one key arrive in order, so this is a bug: retry,
		// and say so loudly.
		return fmt.Errorf("%s: event #%d arrived before #%d", e.Account, e.Seq, last+1)
	}
	switch e.Type {
	case "opened":
		p.balance[e.Account] = 0
	case "deposited":
		p.balance[e.Account] += e.Amount
	case "withdrawn":
		p.balance[e.Account] -= e.Amount
	default:
		return mq.Permanent(fmt.Errorf("%s: unknown event type %q", e.Account, e.Type))
	}
	p.seq[e.Account] = e.Seq
	p.applied++
	select {
	case p.changed <- struct{}{}:
	default:
	}
	return nil
}

func (p *projection) balances() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.balance)
}

func (p *projection) print(out io.Writer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range slices.Sorted(maps.Keys(p.balance)) {
		fmt.Fprintf(out, "  %-6s balance %4d after %2d events\n", a, p.balance[a], p.seq[a])
	}
}

func (p *projection) appliedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied
}

// waitFor returns once n events are applied, or with an error when ctx
// ends or the subscription stops first.
func (p *projection) waitFor(ctx context.Context, sub *mq.Subscription, n int) error {
	for p.appliedCount() < n {
		select {
		case <-p.changed:
		case <-sub.Done():
			return fmt.Errorf("subscription stopped: %w", sub.Err())
		case <-ctx.Done():
			return fmt.Errorf("%d of %d events applied: %w", p.appliedCount(), n, ctx.Err())
		}
	}
	return nil
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
