package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/kafka" // kafka://
	"github.com/seedmq/mq/outbox"
	_ "github.com/seedmq/mq/rabbitmq" // amqp://
	_ "github.com/seedmq/mq/sqs"      // sqs://
)

// realBroker is one of the brokers scripts/brokers runs, reached through
// mq.Open with the address in its environment variable.
type realBroker struct {
	name string
	// direct opens the broker at its address.
	direct func(ctx context.Context) (mq.Broker, error)
	// via opens the broker so that every connection it makes goes through
	// the TCP proxy at addr: stopping the proxy is a broker outage for it
	// alone, and the shared broker keeps running for everyone else.
	via func(ctx context.Context, addr string) (mq.Broker, error)
	// target is the host:port the proxy forwards to.
	target string
}

// realBrokers returns Kafka, RabbitMQ and SQS (ElasticMQ); a broker whose
// variable is unset is skipped, or fails the test under
// MQ_TEST_REQUIRE_BROKERS=1.
func realBrokers(t *testing.T) []realBroker {
	var out []realBroker
	need := func(env string) string {
		v := os.Getenv(env)
		if v == "" {
			msg := env + " is not set: run scripts/brokers up and eval \"$(scripts/brokers env)\""
			if os.Getenv("MQ_TEST_REQUIRE_BROKERS") == "1" {
				t.Fatal(msg)
			}
			t.Log(msg)
		}
		return v
	}
	if addr := need("MQ_TEST_KAFKA_ADDR"); addr != "" {
		out = append(out, realBroker{
			name:   "kafka",
			target: addr,
			direct: func(ctx context.Context) (mq.Broker, error) { return mq.Open(ctx, "kafka://"+addr) },
			via: func(ctx context.Context, proxy string) (mq.Broker, error) {
				// Kafka clients connect to the addresses the cluster
				// advertises, not the one in the URL, so a proxy in the
				// URL would be left after the first metadata request.
				// Route the producer's dials through the proxy instead.
				b, err := mq.Open(ctx, "kafka://"+addr)
				if err != nil {
					return nil, err
				}
				var tr *kafka.Transport
				if !b.(interface{ As(any) bool }).As(&tr) {
					b.Close(ctx)
					return nil, errors.New("kafka broker has no *kafka.Transport")
				}
				tr.CloseIdleConnections()
				var d net.Dialer
				tr.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, proxy)
				}
				return b, nil
			},
		})
	}
	if raw := need("MQ_TEST_AMQP_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("MQ_TEST_AMQP_URL: %v", err)
		}
		open := func(ctx context.Context, host string) (mq.Broker, error) {
			v := *u
			v.Host = host
			q := v.Query()
			q.Set("reconnect_max", "500ms")
			v.RawQuery = q.Encode()
			return mq.Open(ctx, v.String())
		}
		out = append(out, realBroker{
			name:   "rabbitmq",
			target: u.Host,
			direct: func(ctx context.Context) (mq.Broker, error) { return open(ctx, u.Host) },
			via:    open,
		})
	}
	if endpoint := need("MQ_TEST_SQS_ENDPOINT"); endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil {
			t.Fatalf("MQ_TEST_SQS_ENDPOINT: %v", err)
		}
		open := func(ctx context.Context, host string) (mq.Broker, error) {
			return mq.Open(ctx, "sqs://?region=elasticmq&endpoint="+url.QueryEscape("http://"+host))
		}
		out = append(out, realBroker{
			name:   "sqs",
			target: u.Host,
			direct: func(ctx context.Context) (mq.Broker, error) { return open(ctx, u.Host) },
			via:    open,
		})
	}
	return out
}

// consumer counts the deliveries of one topic to one group, by message ID.
type consumer struct {
	mu  sync.Mutex
	ids map[string]int
}

func (c *consumer) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func (c *consumer) deliveries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.ids {
		n += k
	}
	return n
}

// consume provisions topic for group on b and subscribes h (after
// counting) until the test ends.
func consume(t *testing.T, ctx context.Context, b mq.Broker, topic, group string, h mq.Handler) *consumer {
	t.Helper()
	if err := mq.Provision(ctx, b, topic, group); err != nil && !errors.Is(err, mq.ErrNotSupported) {
		t.Fatalf("Provision: %v", err)
	}
	c := &consumer{ids: map[string]int{}}
	opts := []mq.SubscribeOption{mq.Group(group)}
	if b.Capabilities().Replay {
		opts = append(opts, mq.StartAt(mq.Earliest))
	}
	sub := mq.Start(ctx, b, topic, func(ctx context.Context, m *mq.Message) error {
		if h != nil {
			if err := h(ctx, m); err != nil {
				return err
			}
		}
		c.mu.Lock()
		c.ids[m.ID]++
		c.mu.Unlock()
		return nil
	}, opts...)
	t.Cleanup(func() { sub.Stop() })
	return c
}

// proxy forwards TCP connections to target while it is up. down closes
// the listener and every connection: to the clients behind it the broker
// is gone. up listens again on the same address.
type proxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after down
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy up again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // went down meanwhile
				p.mu.Unlock()
				c.Close()
				u.Close()
				return
			}
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// forEachRealBroker runs f as a subtest per real broker with a broker
// opened directly (for subscribing) and a unique topic prefix.
func forEachRealBroker(t *testing.T, f func(t *testing.T, rb realBroker, b mq.Broker, topic string)) {
	suffix := fmt.Sprint(time.Now().UnixNano())
	for _, rb := range realBrokers(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := rb.direct(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeBroker(b) })
			name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
			f(t, rb, b, strings.ToLower(name)+"-"+suffix)
		})
	}
}

func closeBroker(b mq.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.Close(ctx)
}

// The outbox relays to each real broker through mq.Open: every committed
// message arrives, and none of a rolled-back transaction does.
func TestRealBrokers(t *testing.T) {
	forEachRealBroker(t, func(t *testing.T, _ realBroker, b mq.Broker, topic string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		db, _, _ := openSQLite(t)
		if err := outbox.Migrate(ctx, db, outbox.SQLite); err != nil {
			t.Fatal(err)
		}
		got := consume(t, ctx, b, topic, "outbox-test", nil)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Publisher(tx, outbox.SQLite).Publish(ctx, topic, &mq.Message{ID: "rolled-back"}); err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		const n = 30
		for i := range n {
			write(t, db, outbox.SQLite, topic, &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", i%3), Body: []byte{byte(i)}})
		}
		go outbox.NewRelay(db, outbox.SQLite, outbox.RelayOptions{Publisher: b, PollInterval: 20 * time.Millisecond}).Run(ctx)
		waitFor(t, 45*time.Second, "every message at the broker's subscriber", func() bool { return got.distinct() >= n })
		got.mu.Lock()
		defer got.mu.Unlock()
		if got.ids["rolled-back"] > 0 {
			t.Fatal("the rolled-back message was delivered")
		}
	})
}

// Three relays on one table, while writers insert, publish every row once
// to the real broker and keep each key's order; the subscriber gets them
// all.
func TestRealBrokersThreeRelays(t *testing.T) {
	forEachRealBroker(t, func(t *testing.T, _ realBroker, b mq.Broker, topic string) {
		for _, c := range databases() {
			t.Run(c.name, func(t *testing.T) {
				db, _, _ := c.open(t)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				if err := outbox.Migrate(ctx, db, c.d); err != nil {
					t.Fatal(err)
				}
				topic := topic + "-" + c.name
				got := consume(t, ctx, b, topic, "outbox-test", nil)
				rec := &recorder{inner: b}
				const n, keys = 300, 6
				for range 3 {
					go outbox.NewRelay(db, c.d, outbox.RelayOptions{Publisher: rec, BatchSize: 20, PollInterval: 5 * time.Millisecond}).Run(ctx)
				}
				errc := make(chan error, keys)
				for k := range keys {
					go func() {
						for i := k; i < n; i += keys {
							tx, err := db.BeginTx(ctx, nil)
							if err == nil {
								err = outbox.Publisher(tx, c.d).Publish(ctx, topic, &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", k)})
								if err == nil {
									err = tx.Commit()
								} else {
									tx.Rollback()
								}
							}
							if err != nil {
								errc <- err
								return
							}
						}
						errc <- nil
					}()
				}
				for range keys {
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
				}
				waitFor(t, 45*time.Second, "outbox drained", func() bool { return pending(t, db) == 0 })
				waitFor(t, 30*time.Second, "every message at the subscriber", func() bool { return got.distinct() == n })
				sent := rec.snapshot()
				if len(sent) != n {
					t.Errorf("got %d publications of %d messages: a row was claimed twice", len(sent), n)
				}
				checkKeyOrder(t, sent, n, keys)
			})
		}
	})
}

// The broker goes away for the relay (a TCP proxy between them stops):
// rows wait for a second or more, and when the broker is back they drain,
// each key in order. The shared broker itself keeps running.
func TestRealBrokersOutage(t *testing.T) {
	forEachRealBroker(t, func(t *testing.T, rb realBroker, b mq.Broker, topic string) {
		db, _, _ := openPostgres(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := outbox.Migrate(ctx, db, outbox.Postgres); err != nil {
			t.Fatal(err)
		}
		got := consume(t, ctx, b, topic, "outbox-test", nil)
		px := newProxy(t, rb.target)
		pb, err := rb.via(ctx, px.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeBroker(pb) })

		px.down()
		const n, keys = 40, 4
		for i := range n {
			write(t, db, outbox.Postgres, topic, &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", i%keys)})
		}
		rec := &recorder{inner: pb}
		down := time.Now()
		go outbox.NewRelay(db, outbox.Postgres, outbox.RelayOptions{Publisher: rec, Lease: 3 * time.Second, MaxBackoff: 500 * time.Millisecond, PollInterval: 20 * time.Millisecond}).Run(ctx)
		waitFor(t, 20*time.Second, "publishes to fail during the outage", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.fails >= 2 && time.Since(down) >= time.Second
		})
		if p := pending(t, db); p != n {
			t.Fatalf("during the outage: %d rows left, want all %d", p, n)
		}
		if s := rec.snapshot(); len(s) != 0 {
			t.Fatalf("during the outage: %d messages reported sent, want 0", len(s))
		}
		px.up(t)
		up := time.Now()
		waitFor(t, 40*time.Second, "outbox drained after the outage", func() bool { return pending(t, db) == 0 })
		waitFor(t, 30*time.Second, "every message at the subscriber", func() bool { return got.distinct() == n })
		checkKeyOrder(t, rec.snapshot(), n, keys)
		rec.mu.Lock()
		t.Logf("outage of %v: %d failed publish calls; drained %v after the broker was back", up.Sub(down).Round(time.Millisecond), rec.fails, time.Since(up).Round(time.Millisecond))
		rec.mu.Unlock()
	})
}

// The same message ID delivered three times by the real broker (once by
// the relay, twice more as after lost acks) has one effect through the
// inbox.
func TestRealBrokersInbox(t *testing.T) {
	forEachRealBroker(t, func(t *testing.T, _ realBroker, b mq.Broker, topic string) {
		db, _, _ := openPostgres(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := outbox.Migrate(ctx, db, outbox.Postgres); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE counter (n INTEGER NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO counter (n) VALUES (0)"); err != nil {
			t.Fatal(err)
		}
		var applied atomic.Int32
		h := outbox.Inbox(db, outbox.Postgres, outbox.InboxOptions{})(func(ctx context.Context, m *mq.Message) error {
			applied.Add(1)
			_, err := outbox.Tx(ctx).ExecContext(ctx, "UPDATE counter SET n = n + 1")
			return err
		})
		got := consume(t, ctx, b, topic, "billing", h)
		write(t, db, outbox.Postgres, topic, &mq.Message{ID: "dup", Body: []byte("1")})
		drain(t, db, outbox.NewRelay(db, outbox.Postgres, outbox.RelayOptions{Publisher: b}))
		for range 2 {
			if err := b.Publish(ctx, topic, &mq.Message{ID: "dup", Body: []byte("1")}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 45*time.Second, "three deliveries", func() bool { return got.deliveries() == 3 })
		var n int
		if err := db.QueryRowContext(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 || applied.Load() != 1 {
			t.Fatalf("counter %d, handler applied %d times; want 1 and 1", n, applied.Load())
		}
	})
}
