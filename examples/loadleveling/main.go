// Loadleveling shows a queue absorbing a burst, the Black Friday story
// scaled down: orders arrive far faster than the fulfilment service can
// handle them, the broker holds the backlog, and the service works it off
// at its own fixed pace, never overloaded, losing nothing.
//
// Publishers send a burst of order-placed messages at once. The
// fulfilment service handles at most Rate orders per second, Concurrency
// at a time. A progress line every quarter second shows the queue depth
// (orders published and not yet handled) shrinking at the service's pace.
//
// Run it on the in-process memory broker:
//
//	go run ./examples/loadleveling
//
// or on a real broker, by URL (see each driver's package documentation):
//
//	MQ_URL=kafka://127.0.0.1:9092 go run ./examples/loadleveling
//	MQ_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/loadleveling
//	MQ_URL='sqs://?endpoint=http://127.0.0.1:9324&region=elasticmq' go run ./examples/loadleveling
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

	cfg := config{
		Prefix:      "loadleveling-" + strings.ToLower(rand.Text()[:6]) + "-",
		Orders:      300,
		Publishers:  50,
		Rate:        100,
		Concurrency: 2,
		Every:       250 * time.Millisecond,
	}
	if _, err := run(ctx, *url, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadleveling:", err)
		os.Exit(1)
	}
}

// config sizes one run.
type config struct {
	// Prefix starts every topic and group name, so that runs sharing a
	// real broker do not see each other's messages.
	Prefix string
	// Orders is the size of the burst, sent by Publishers goroutines at
	// once.
	Orders, Publishers int
	// Rate is how many orders per second the fulfilment service handles,
	// at most Concurrency at a time.
	Rate, Concurrency int
	// Every is how often the queue depth is printed.
	Every time.Duration
}

// result is what a run measured.
type result struct {
	Published   int           // orders the broker accepted
	Handled     int           // distinct orders the service handled
	Duplicates  int           // redeliveries of orders already handled
	MaxDepth    int           // deepest queue seen
	MaxInFlight int           // most orders handled at once
	PeakRate    int           // most orders started in any one second
	Burst       time.Duration // how long publishing the burst took
	Drain       time.Duration // from the first order the service started to the last
}

func run(ctx context.Context, url string, out io.Writer, cfg config) (res result, err error) {
	b, err := mq.Open(ctx, url)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeBroker(ctx, b)) }()

	topic, group := cfg.Prefix+"order-placed", cfg.Prefix+"fulfilment"
	if err := mq.Provision(ctx, b, topic, group); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "broker %s: topic %s, group %s\n", b.Capabilities().Driver, topic, group)

	// The fulfilment service runs before, during and after the burst.
	svc := newFulfilment(cfg.Rate)
	sub := mq.Start(ctx, b, topic, svc.handle, mq.Group(group), mq.Concurrency(cfg.Concurrency))
	defer func() {
		if serr := sub.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	// The burst: every publisher sends its share as fast as the broker
	// takes it, while the queue depth (published, not yet handled) is
	// printed until the service has worked it off.
	fmt.Fprintf(out, "burst: %d orders from %d publishers at once; the fulfilment service handles %d per second, %d at a time\n",
		cfg.Orders, cfg.Publishers, cfg.Rate, cfg.Concurrency)
	var published atomic.Int64
	burstStart := time.Now()
	burstDone := make(chan error, 1)
	go func() { burstDone <- burst(ctx, b, topic, cfg.Orders, cfg.Publishers, &published) }()
	defer func() {
		if burstDone != nil {
			<-burstDone // on an early return, wait for the publishers
		}
	}()

	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	for {
		note := ""
		select {
		case <-tick.C:
		case err := <-burstDone:
			burstDone = nil
			res.Burst = time.Since(burstStart)
			res.Published = int(published.Load())
			if err != nil {
				return res, err
			}
			note = fmt.Sprintf("  ← burst over: %d orders in %v (%.0f per second)",
				res.Published, roundDuration(res.Burst), float64(res.Published)/res.Burst.Seconds())
		case <-sub.Done():
			return res, fmt.Errorf("fulfilment service stopped: %w", sub.Err())
		case <-ctx.Done():
			return res, fmt.Errorf("%d of %d orders handled: %w", svc.handledCount(), published.Load(), ctx.Err())
		}
		depth := int(published.Load()) - svc.handledCount()
		res.MaxDepth = max(res.MaxDepth, depth)
		line := strings.TrimRight(fmt.Sprintf("%-40s%s", bar(depth, cfg.Orders, 40), note), " ")
		fmt.Fprintf(out, "%6.2fs  queue %4d  %s\n", time.Since(burstStart).Seconds(), depth, line)
		if burstDone == nil && depth == 0 {
			break
		}
	}

	res.Handled, res.Duplicates, res.MaxInFlight, res.PeakRate, res.Drain = svc.stats()
	fmt.Fprintf(out, "done: %d of %d orders fulfilled, none lost; the service never had more than %d at once nor started more than %d in one second (its limit: %d)\n",
		res.Handled, res.Published, res.MaxInFlight, res.PeakRate, cfg.Rate)
	return res, nil
}

// burst publishes n orders from p goroutines, one Publish call per order,
// as p front-end servers would, counting those the broker accepted.
func burst(ctx context.Context, pub mq.Publisher, topic string, n, p int, published *atomic.Int64) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range p {
		wg.Go(func() {
			for i := w; i < n; i += p {
				id := fmt.Sprintf("order-%04d", i+1)
				err := pub.Publish(ctx, topic, &mq.Message{ID: id, Key: id, Body: []byte(`{"order":"` + id + `"}`)})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", id, err))
					mu.Unlock()
					continue
				}
				published.Add(1)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fulfilment handles orders at a fixed rate: each order waits for its
// turn, and turns are one interval apart, so the service never starts
// more than rate orders per second, however many wait in the queue.
type fulfilment struct {
	interval time.Duration

	mu         sync.Mutex
	next       time.Time // the earliest the next order may start
	handled    map[string]bool
	duplicates int
	inFlight   int
	most       int         // highest inFlight
	starts     []time.Time // the turn each handled order was given
}

func newFulfilment(rate int) *fulfilment {
	interval := (time.Second + time.Duration(rate) - 1) / time.Duration(rate) // rounded up, never faster than rate
	return &fulfilment{interval: interval, handled: map[string]bool{}}
}

// turn reserves the next start time, at least one interval after the
// previous one, and waits for it.
func (f *fulfilment) turn(ctx context.Context) (time.Time, error) {
	f.mu.Lock()
	t := f.next
	if now := time.Now(); t.Before(now) {
		t = now // an idle service starts at once
	}
	f.next = t.Add(f.interval)
	f.mu.Unlock()

	wait := time.NewTimer(time.Until(t))
	defer wait.Stop()
	select {
	case <-wait.C:
		return t, nil
	case <-ctx.Done():
		return t, ctx.Err()
	}
}

func (f *fulfilment) handle(ctx context.Context, m *mq.Message) error {
	f.mu.Lock()
	f.inFlight++
	f.most = max(f.most, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()

	start, err := f.turn(ctx)
	if err != nil {
		return err // the order goes back to the queue
	}

	// ... pick, pack and ship the order ...

	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, start)
	if f.handled[m.ID] {
		f.duplicates++
	}
	f.handled[m.ID] = true
	return nil
}

func (f *fulfilment) handledCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.handled)
}

// stats returns the distinct orders handled, the duplicates, the most
// orders handled at once, the most started within any one second, and the
// time from the first start to the last.
func (f *fulfilment) stats() (handled, duplicates, mostInFlight, peakRate int, drain time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	starts := slices.SortedFunc(slices.Values(f.starts), time.Time.Compare)
	first := 0
	for i, t := range starts {
		for t.Sub(starts[first]) >= time.Second {
			first++
		}
		peakRate = max(peakRate, i-first+1)
	}
	if len(starts) > 0 {
		drain = starts[len(starts)-1].Sub(starts[0])
	}
	return len(f.handled), f.duplicates, f.most, peakRate, drain
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

// bar draws n of total as a bar width characters wide at most.
func bar(n, total, width int) string {
	if total == 0 {
		return ""
	}
	return strings.Repeat("█", (n*width+total-1)/total)
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
