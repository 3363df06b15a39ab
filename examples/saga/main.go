// Saga runs an order saga by events, with compensation: there is no
// distributed transaction, so when a later step fails, earlier steps are
// undone by further events.
//
//	order-placed      → inventory reserves stock   → stock-reserved
//	stock-reserved    → payments charges the card  → payment-succeeded or payment-failed
//	payment-succeeded → orders confirms the order
//	payment-failed    → inventory releases stock   → stock-released
//	stock-released    → orders cancels the order
//
// Every order ends consistent, on the happy path (confirmed, stock taken,
// card charged once) and on the failing one (cancelled, stock back, card
// not charged). Delivery is at-least-once, so every handler is idempotent:
// it records what it did per order, and on a redelivery announces the
// recorded outcome again instead of doing the work twice. The run proves
// it: the shop sends every order-placed twice, as a producer retrying
// after a timeout would, and the payments service crashes once right
// after charging a card, before it could announce the charge.
//
// Each event topic has exactly one consumer group, so the saga runs on
// every broker, SQS included. Run it on the in-process memory broker:
//
//	go run ./examples/saga
//
// or on a real broker, by URL (see each driver's package documentation):
//
//	MQ_URL=kafka://127.0.0.1:9092 go run ./examples/saga
//	MQ_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/saga
//	MQ_URL='sqs://?endpoint=http://127.0.0.1:9324&region=elasticmq' go run ./examples/saga
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

	cfg := config{Prefix: "saga-" + strings.ToLower(rand.Text()[:6]) + "-", Orders: 6, Stock: 100}
	if _, err := run(ctx, *url, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "saga:", err)
		os.Exit(1)
	}
}

// config sizes one run.
type config struct {
	// Prefix starts every topic and group name, so that runs sharing a
	// real broker do not see each other's messages.
	Prefix string
	// Orders is how many orders are placed; every third one's card is
	// declined.
	Orders int
	// Stock is how many units the warehouse holds at the start.
	Stock int
}

// result is the state the saga ended in.
type result struct {
	Confirmed, Cancelled int
	Charged, Declined    int // cards charged and declined
	// Recovered is the attempt at which the message payments crashed on
	// came back (2: the first redelivery); 0 if it never did.
	Recovered  int
	StockAfter int
	Duplicates int      // redelivered or duplicated events the services recognised
	Problems   []string // inconsistencies found; none on a correct run
}

// order is the body of every event of the saga.
type order struct {
	ID   string `json:"id"`
	Qty  int    `json:"qty"`
	Card string `json:"card"` // "ok" or "declined"
}

// topics names the saga's events; each has one consumer group.
type topics struct {
	placed, reserved, paid, paymentFailed, released string
}

func run(ctx context.Context, url string, out io.Writer, cfg config) (res result, err error) {
	b, err := mq.Open(ctx, url)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeBroker(ctx, b)) }()

	p := cfg.Prefix
	t := topics{p + "order-placed", p + "stock-reserved", p + "payment-succeeded", p + "payment-failed", p + "stock-released"}
	changed := make(chan struct{}, 1)
	inv := &inventory{pub: b, t: t, stock: cfg.Stock, reserved: map[string]int{}, released: map[string]bool{}}
	pay := &payments{pub: b, t: t, outcome: map[string]string{}, crashAfterCharging: map[string]bool{"order-001": true}}
	ord := &orders{status: map[string]string{}, changed: changed}

	// Each step: the topic it consumes, its group, its handler.
	steps := []struct {
		topic, group string
		h            mq.Handler
	}{
		{t.placed, p + "inventory-reserve", inv.reserve},
		{t.reserved, p + "payments-charge", pay.charge},
		{t.paid, p + "orders-confirm", ord.confirm},
		{t.paymentFailed, p + "inventory-release", inv.release},
		{t.released, p + "orders-cancel", ord.cancel},
	}
	fmt.Fprintf(out, "broker %s: %d topics, each with one consumer group, names starting %s\n", b.Capabilities().Driver, len(steps), p)
	var subs []*mq.Subscription
	defer func() {
		for _, s := range subs {
			if serr := s.Stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	for _, s := range steps {
		if err := mq.Provision(ctx, b, s.topic, s.group); err != nil {
			return res, err
		}
		sub := mq.Start(ctx, b, s.topic, s.h, mq.Group(s.group))
		subs = append(subs, sub)
		go func() { // wake the wait below if the subscription stops
			<-sub.Done()
			select {
			case changed <- struct{}{}:
			default:
			}
		}()
	}

	// The shop places the orders, sending each order-placed twice.
	placed := make([]order, cfg.Orders)
	for i := range placed {
		o := order{ID: fmt.Sprintf("order-%03d", i+1), Qty: 1 + i%3, Card: "ok"}
		if (i+1)%3 == 0 {
			o.Card = "declined"
		}
		placed[i] = o
		ord.place(o.ID)
		for range 2 {
			if err := emit(ctx, b, t.placed, o); err != nil {
				return res, err
			}
		}
	}
	fmt.Fprintf(out, "placed %d orders, each order-placed sent twice, as a producer retrying after a timeout would\n", len(placed))

	// Wait until both copies of every order have run through the saga.
	for !ord.settled(2 * len(placed)) {
		for _, s := range subs {
			select {
			case <-s.Done():
				return res, fmt.Errorf("a service stopped: %w", s.Err())
			default:
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return res, fmt.Errorf("saga not finished: %w", ctx.Err())
		}
	}

	res = check(cfg, placed, inv, pay, ord)
	fmt.Fprintf(out, "payments: %d cards charged, %d declined; crashed right after charging order-001, got the event again (attempt %d) and did not charge twice\n",
		res.Charged, res.Declined, res.Recovered)
	fmt.Fprintf(out, "orders: %d confirmed, %d cancelled (payment failed → stock released → order cancelled)\n", res.Confirmed, res.Cancelled)
	fmt.Fprintf(out, "duplicate events recognised and not acted on twice: %d\n", res.Duplicates)
	if len(res.Problems) > 0 {
		return res, fmt.Errorf("inconsistent end state:\n  %s", strings.Join(res.Problems, "\n  "))
	}
	fmt.Fprintf(out, "consistent: stock %d → %d, %d cards charged for %d confirmed orders, no stock held for cancelled orders\n",
		cfg.Stock, res.StockAfter, res.Charged, res.Confirmed)
	return res, nil
}

// emit publishes one saga event.
func emit(ctx context.Context, pub mq.Publisher, topic string, o order) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return pub.Publish(ctx, topic, &mq.Message{Key: o.ID, Body: body})
}

func decode(m *mq.Message) (order, error) {
	var o order
	if err := json.Unmarshal(m.Body, &o); err != nil || o.ID == "" {
		return o, mq.Permanent(fmt.Errorf("bad event %s on %s: %v", m.ID, m.Topic, err))
	}
	return o, nil
}

// inventory reserves stock for new orders and releases it when their
// payment fails.
type inventory struct {
	pub mq.Publisher
	t   topics

	mu         sync.Mutex
	stock      int
	reserved   map[string]int  // units held per order
	released   map[string]bool // orders whose units went back
	duplicates int
}

func (s *inventory) reserve(ctx context.Context, m *mq.Message) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if _, done := s.reserved[o.ID]; done {
		s.duplicates++
	} else {
		s.stock -= o.Qty
		s.reserved[o.ID] = o.Qty
	}
	s.mu.Unlock()
	// Announce the outcome, also on a duplicate: an earlier attempt may
	// have reserved and then failed to publish. Consumers are idempotent.
	return emit(ctx, s.pub, s.t.reserved, o)
}

func (s *inventory) release(ctx context.Context, m *mq.Message) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.released[o.ID] {
		s.duplicates++
	} else {
		s.stock += s.reserved[o.ID]
		s.released[o.ID] = true
	}
	s.mu.Unlock()
	return emit(ctx, s.pub, s.t.released, o)
}

// payments charges the card of each order whose stock is reserved.
type payments struct {
	pub mq.Publisher
	t   topics

	mu                 sync.Mutex
	outcome            map[string]string // "charged" or "declined", per order
	crashAfterCharging map[string]bool   // orders to crash on once, after charging
	crashed            string            // ID of the message it crashed on
	recovered          int               // that message's attempt when it came back
	duplicates         int
}

func (s *payments) charge(ctx context.Context, m *mq.Message) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if m.ID == s.crashed && s.recovered == 0 {
		s.recovered = m.Attempt
	}
	outcome, done := s.outcome[o.ID]
	if done {
		s.duplicates++
	} else {
		outcome = "declined"
		if o.Card == "ok" {
			outcome = "charged" // a real service would call the payment provider here
		}
		s.outcome[o.ID] = outcome
	}
	crash := s.crashAfterCharging[o.ID] && outcome == "charged"
	if crash {
		delete(s.crashAfterCharging, o.ID)
		s.crashed = m.ID
	}
	s.mu.Unlock()
	if crash {
		// The card is charged but nobody knows yet: the message is not
		// acknowledged and comes back, and the charge is not repeated.
		return errors.New("payments: crashed after charging the card")
	}
	if outcome == "charged" {
		return emit(ctx, s.pub, s.t.paid, o)
	}
	return emit(ctx, s.pub, s.t.paymentFailed, o)
}

// orders owns each order's status: placed, then confirmed or cancelled.
type orders struct {
	mu         sync.Mutex
	status     map[string]string
	ends       int // confirm and cancel events handled, duplicates included
	duplicates int
	changed    chan struct{}
}

func (s *orders) place(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[id] = "placed"
}

func (s *orders) confirm(ctx context.Context, m *mq.Message) error { return s.end(m, "confirmed") }
func (s *orders) cancel(ctx context.Context, m *mq.Message) error  { return s.end(m, "cancelled") }

func (s *orders) end(m *mq.Message, status string) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ends++
	switch s.status[o.ID] {
	case "placed":
		s.status[o.ID] = status
	case status:
		s.duplicates++
	default:
		return mq.Permanent(fmt.Errorf("orders: %s is %q, cannot become %s", o.ID, s.status[o.ID], status))
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return nil
}

// settled reports whether every order has ended and at least n end events
// were handled.
func (s *orders) settled(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.status {
		if st == "placed" {
			return false
		}
	}
	return s.ends >= n
}

// check compares the services' states, order by order.
func check(cfg config, placed []order, inv *inventory, pay *payments, ord *orders) result {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	pay.mu.Lock()
	defer pay.mu.Unlock()
	ord.mu.Lock()
	defer ord.mu.Unlock()

	var res result
	problem := func(format string, args ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, args...)) }
	want := cfg.Stock
	for _, o := range placed {
		switch st := ord.status[o.ID]; st {
		case "confirmed":
			res.Confirmed++
			want -= o.Qty
			if pay.outcome[o.ID] != "charged" {
				problem("%s confirmed but its payment is %q", o.ID, pay.outcome[o.ID])
			}
			if inv.reserved[o.ID] != o.Qty || inv.released[o.ID] {
				problem("%s confirmed but holds %d units (released: %v), want %d", o.ID, inv.reserved[o.ID], inv.released[o.ID], o.Qty)
			}
		case "cancelled":
			res.Cancelled++
			if pay.outcome[o.ID] == "charged" {
				problem("%s cancelled but its card was charged", o.ID)
			}
			if !inv.released[o.ID] {
				problem("%s cancelled but its stock was not released", o.ID)
			}
		default:
			problem("%s ended %q, want confirmed or cancelled", o.ID, st)
		}
	}
	for _, outcome := range pay.outcome {
		switch outcome {
		case "charged":
			res.Charged++
		case "declined":
			res.Declined++
		}
	}
	res.Recovered = pay.recovered
	if res.Charged != res.Confirmed {
		problem("%d cards charged for %d confirmed orders", res.Charged, res.Confirmed)
	}
	res.StockAfter = inv.stock
	if inv.stock != want {
		problem("stock is %d, want %d", inv.stock, want)
	}
	res.Duplicates = inv.duplicates + pay.duplicates + ord.duplicates
	return res
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
