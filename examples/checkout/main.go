// Checkout shows fan-out and loose coupling: the shop publishes one
// order-placed event per order, and every service that cares about orders
// gets its own copy, in its own consumer group, without the shop knowing
// who they are.
//
// Inventory, payments, fraud, shipping and notifications each subscribe
// with their own group and each receive every order. Then a loyalty
// service is added, again with its own group: it receives the orders
// placed from then on, and the producer's code does not change.
//
// Fan-out needs a broker that delivers each message to every group:
// memory, Kafka, RabbitMQ and SNS with SQS (sns+sqs://) do. SQS alone does
// not (a queue has one set of consumers); on sqs:// the example says so and
// exits with status 1.
//
// Run it on the in-process memory broker:
//
//	go run ./examples/checkout
//
// or on a real broker, by URL (see each driver's package documentation):
//
//	MQ_URL=kafka://127.0.0.1:9092 go run ./examples/checkout
//	MQ_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/checkout
//	MQ_URL='sns+sqs://?region=us-east-1&endpoint=http://127.0.0.1:5000' go run ./examples/checkout
//
// (the last on moto as scripts/brokers starts it, with any AWS credentials
// in the environment; on AWS, leave out the endpoint.)
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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/kafka"    // registers kafka://
	_ "github.com/seedmq/mq/memory"   // registers mem://
	_ "github.com/seedmq/mq/rabbitmq" // registers amqp:// and amqps://
	_ "github.com/seedmq/mq/sqs"      // registers sqs:// and sns+sqs://
)

func main() {
	url := flag.String("url", envOr("MQ_URL", "mem://"), "broker URL (default $MQ_URL, else mem://)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	cfg := config{Prefix: "checkout-" + strings.ToLower(rand.Text()[:6]) + "-", Orders: 10, More: 5}
	if _, err := run(ctx, *url, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "checkout:", err)
		os.Exit(1)
	}
}

// config sizes one run.
type config struct {
	// Prefix starts every topic and group name, so that runs sharing a
	// real broker do not see each other's messages.
	Prefix string
	// Orders are placed before the loyalty service exists, More after.
	Orders, More int
}

// result is what a run counted.
type result struct {
	Placed int            // orders the shop placed
	Got    map[string]int // distinct orders each service received
}

// orderPlaced is the body of an order-placed event.
type orderPlaced struct {
	Order string `json:"order"`
	Total int    `json:"total_cents"`
}

// The services that consume order-placed from the start; loyalty comes
// later.
var services = []string{"inventory", "payments", "fraud", "shipping", "notifications"}

func run(ctx context.Context, url string, out io.Writer, cfg config) (res result, err error) {
	b, err := mq.Open(ctx, url)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeBroker(ctx, b)) }()

	// Fail at start-up, clearly, on a broker that cannot fan out.
	if err := mq.Require(b, mq.CapFanOut); err != nil {
		return res, fmt.Errorf("%w: each service here needs its own copy of every order (memory, Kafka, RabbitMQ and sns+sqs:// fan out; with sqs:// alone, use one queue per service)", err)
	}

	topic := cfg.Prefix + "order-placed"
	group := func(service string) string { return cfg.Prefix + service }
	fmt.Fprintf(out, "broker %s: topic %s\n", b.Capabilities().Driver, topic)

	orders := &counter{got: map[string]map[string]bool{}, changed: make(chan struct{}, 1)}
	var subs []*mq.Subscription
	defer func() {
		for _, s := range subs {
			if serr := s.Stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	start := func(service string) error {
		// Provision first: the group keeps every order published from
		// now on, even before its subscription has joined.
		if err := mq.Provision(ctx, b, topic, group(service)); err != nil {
			return err
		}
		sub := mq.Start(ctx, b, topic, orders.handler(service), mq.Group(group(service)))
		subs = append(subs, sub)
		go func() { <-sub.Done(); orders.signal() }() // wake waitFor if it stops
		return nil
	}

	for _, s := range services {
		if err := start(s); err != nil {
			return res, err
		}
	}
	if err := placeOrders(ctx, b, topic, 1, cfg.Orders); err != nil {
		return res, err
	}
	res.Placed = cfg.Orders
	want := map[string]int{}
	for _, s := range services {
		want[s] = res.Placed
	}
	if err := orders.waitFor(ctx, subs, want); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "placed %d orders; each service got every one:\n", res.Placed)
	orders.print(out, services, want)

	// A new consumer: subscribe a loyalty service in its own group. The
	// producer (placeOrders) does not change and does not know.
	if err := start("loyalty"); err != nil {
		return res, err
	}
	if err := placeOrders(ctx, b, topic, res.Placed+1, cfg.More); err != nil {
		return res, err
	}
	res.Placed += cfg.More
	for _, s := range services {
		want[s] = res.Placed
	}
	want["loyalty"] = cfg.More
	if err := orders.waitFor(ctx, subs, want); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "added a loyalty service (its own group; the producer unchanged) and placed %d more orders:\n", cfg.More)
	orders.print(out, slices.Concat(services, []string{"loyalty"}), want)
	res.Got = orders.counts()
	return res, nil
}

// placeOrders is the shop: it publishes order-placed events and knows
// nothing about who consumes them.
func placeOrders(ctx context.Context, pub mq.Publisher, topic string, first, n int) error {
	for i := first; i < first+n; i++ {
		id := fmt.Sprintf("order-%03d", i)
		body, _ := json.Marshal(orderPlaced{Order: id, Total: 1000 + 250*i})
		if err := pub.Publish(ctx, topic, &mq.Message{Key: id, Body: body}); err != nil {
			return fmt.Errorf("place %s: %w", id, err)
		}
	}
	return nil
}

// counter records which orders each service received. Services remember
// the orders they handled, so a redelivered order is counted once.
type counter struct {
	mu      sync.Mutex
	got     map[string]map[string]bool // service → order IDs
	changed chan struct{}              // signalled after each message and when a service stops
}

// handler returns the handler of one service.
func (c *counter) handler(service string) mq.Handler {
	return func(ctx context.Context, m *mq.Message) error {
		var o orderPlaced
		if err := json.Unmarshal(m.Body, &o); err != nil {
			return mq.Permanent(fmt.Errorf("%s: bad order-placed %s: %w", service, m.ID, err))
		}
		c.mu.Lock()
		if c.got[service] == nil {
			c.got[service] = map[string]bool{}
		}
		c.got[service][o.Order] = true // a real service would reserve stock, charge, ship...
		c.mu.Unlock()
		c.signal()
		return nil
	}
}

// signal wakes waitFor.
func (c *counter) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *counter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := map[string]int{}
	for s, orders := range c.got {
		n[s] = len(orders)
	}
	return n
}

// waitFor returns once each service received want[service] orders, or with
// an error when ctx ends or a subscription stops first.
func (c *counter) waitFor(ctx context.Context, subs []*mq.Subscription, want map[string]int) error {
	for {
		got := c.counts()
		missing := 0
		for s, n := range want {
			missing += max(n-got[s], 0)
		}
		if missing == 0 {
			return nil
		}
		for _, s := range subs {
			select {
			case <-s.Done():
				return fmt.Errorf("a service stopped: %w", s.Err())
			default:
			}
		}
		select {
		case <-c.changed:
		case <-ctx.Done():
			return fmt.Errorf("%d deliveries missing (got %v, want %v): %w", missing, got, want, ctx.Err())
		}
	}
}

func (c *counter) print(out io.Writer, services []string, want map[string]int) {
	got := c.counts()
	for _, s := range services {
		fmt.Fprintf(out, "  %-14s %3d of %d\n", s, got[s], want[s])
	}
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
