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
// Every service keeps its state in a database, and every step is one
// database transaction: the service's state change, the event it
// announces (written with package outbox's Publisher) and the record that
// it handled the incoming event (package outbox's Inbox) commit together,
// or none of them does. A relay publishes the committed events to the
// broker. So no event is announced for a change that rolled back, no
// change is made without its event, and an event delivered twice is
// applied once.
//
// The run proves it. The relay's broker connection loses the ack of
// every order-placed once, so the relay publishes each of them twice (as
// a relay that died between the broker's ack and its delete would), and
// the inbox drops the copies. The payments service crashes once right
// after charging a card, before its transaction committed: the charge,
// its event and the inbox record roll back together, the broker delivers
// the event again, and the card is charged once.
//
// (This example keeps all services in one database with one relay, to
// need no set-up; in production each service has its own database, outbox
// and relay. A real payment provider is outside the transaction: give it
// the message ID as its idempotency key.)
//
// Each event topic has exactly one consumer group, so the saga runs on
// every broker, SQS included. Run it on SQLite (a file in a temporary
// directory) and the in-process memory broker, with no set-up:
//
//	go run ./examples/saga
//
// on PostgreSQL by DSN (the run makes a schema of its own and drops it):
//
//	MQ_SAGA_DB='postgres://user:pass@127.0.0.1:5432/db?sslmode=disable' go run ./examples/saga
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
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver (pure Go)

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/kafka"  // registers kafka://
	_ "github.com/seedmq/mq/memory" // registers mem://
	"github.com/seedmq/mq/outbox"
	"github.com/seedmq/mq/outbox/pgxlisten"
	_ "github.com/seedmq/mq/rabbitmq" // registers amqp:// and amqps://
	_ "github.com/seedmq/mq/sqs"      // registers sqs://
)

func main() {
	url := flag.String("url", envOr("MQ_URL", "mem://"), "broker URL (default $MQ_URL, else mem://)")
	dsn := flag.String("db", os.Getenv("MQ_SAGA_DB"), "PostgreSQL DSN (default $MQ_SAGA_DB, else a SQLite file in a temporary directory)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	cfg := config{Prefix: "saga-" + strings.ToLower(rand.Text()[:6]) + "-", Orders: 6, Stock: 100, DB: *dsn}
	if _, err := run(ctx, *url, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "saga:", err)
		os.Exit(1)
	}
}

// config sizes one run.
type config struct {
	// Prefix starts every topic and group name (and, on PostgreSQL, the
	// schema's), so that runs sharing a broker or database do not see
	// each other's messages.
	Prefix string
	// Orders is how many orders are placed; every third one's card is
	// declined.
	Orders int
	// Stock is how many units the warehouse holds at the start.
	Stock int
	// DB is a PostgreSQL DSN; empty means SQLite in a temporary directory.
	DB string
}

// result is the state the saga ended in, read from the database.
type result struct {
	Confirmed, Cancelled int
	Charged, Declined    int // cards charged and declined
	// Recovered is the attempt at which the message payments crashed on
	// came back (2: the first redelivery); 0 if it never did.
	Recovered  int
	StockAfter int
	Duplicates int      // deliveries the inbox recognised and did not apply again
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

// tables is the services' state: orders owns orders, inventory owns
// stock and reservations, payments owns payments.
var tables = []string{
	`CREATE TABLE orders (id TEXT PRIMARY KEY, qty INTEGER NOT NULL, card TEXT NOT NULL, status TEXT NOT NULL)`,
	`CREATE TABLE stock (item TEXT PRIMARY KEY, units INTEGER NOT NULL)`,
	`CREATE TABLE reservations (order_id TEXT PRIMARY KEY, qty INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0)`,
	`CREATE TABLE payments (order_id TEXT PRIMARY KEY, outcome TEXT NOT NULL)`,
}

// saga is one run: the database, the broker and what the run observed.
type saga struct {
	db *sql.DB
	d  *outbox.Dialect
	t  topics

	mu         sync.Mutex
	crashOn    string // order whose charge crashes once, "" after the crash
	crashedMsg string // ID of the message payments crashed on
	recovered  int    // that message's attempt when it came back

	deliveries, applied atomic.Int64 // handled without error: all, and by the services
}

func run(ctx context.Context, url string, out io.Writer, cfg config) (res result, err error) {
	db, d, where, closeDB, err := openDB(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeDB()) }()
	if err := outbox.Migrate(ctx, db, d); err != nil {
		return res, err
	}
	for _, stmt := range tables {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return res, fmt.Errorf("create the services' tables: %w", err)
		}
	}
	if _, err := db.ExecContext(ctx, q(d, "INSERT INTO stock (item, units) VALUES ('widget', $1)"), cfg.Stock); err != nil {
		return res, err
	}

	b, err := mq.Open(ctx, url)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeBroker(ctx, b)) }()

	p := cfg.Prefix
	s := &saga{db: db, d: d, crashOn: "order-001",
		t: topics{p + "order-placed", p + "stock-reserved", p + "payment-succeeded", p + "payment-failed", p + "stock-released"}}

	// Each step: the topic it consumes, its group, its handler. Inbox
	// opens the step's transaction and records the message in it.
	steps := []struct {
		topic, group string
		h            mq.Handler
	}{
		{s.t.placed, p + "inventory-reserve", s.reserve},
		{s.t.reserved, p + "payments-charge", s.charge},
		{s.t.paid, p + "orders-confirm", s.confirm},
		{s.t.paymentFailed, p + "inventory-release", s.release},
		{s.t.released, p + "orders-cancel", s.cancel},
	}
	fmt.Fprintf(out, "database %s, broker %s: %d topics, each with one consumer group, names starting %s\n", where, b.Capabilities().Driver, len(steps), p)
	var subs []*mq.Subscription
	defer func() {
		for _, sub := range subs {
			if serr := sub.Stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	for _, st := range steps {
		if err := mq.Provision(ctx, b, st.topic, st.group); err != nil {
			return res, err
		}
		h := outbox.Inbox(db, d, outbox.InboxOptions{Group: st.group})(st.h)
		subs = append(subs, mq.Start(ctx, b, st.topic, s.count(h), mq.Group(st.group)))
	}

	// The relay: every event committed by the shop and the services goes
	// to the broker through it.
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	ro := outbox.RelayOptions{
		Publisher:    &lostAcks{Publisher: b, topic: s.t.placed, seen: map[string]bool{}},
		PollInterval: 20 * time.Millisecond,
		MaxBackoff:   time.Second,
		// The publish failures it would log are the ones lostAcks makes.
		Logger: slog.New(slog.DiscardHandler),
	}
	if d == outbox.Postgres {
		ro.Listener = pgxlisten.New(db)
	}
	go func() { relayDone <- outbox.NewRelay(db, d, ro).Run(relayCtx) }()
	defer func() {
		stopRelay()
		if rerr := <-relayDone; !errors.Is(rerr, context.Canceled) && err == nil {
			err = fmt.Errorf("relay: %w", rerr)
		}
	}()

	// The shop places the orders: each order row and its order-placed
	// event in one transaction.
	placed := make([]order, cfg.Orders)
	for i := range placed {
		o := order{ID: fmt.Sprintf("order-%03d", i+1), Qty: 1 + i%3, Card: "ok"}
		if (i+1)%3 == 0 {
			o.Card = "declined"
		}
		placed[i] = o
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, q(d, "INSERT INTO orders (id, qty, card, status) VALUES ($1, $2, $3, 'placed')"), o.ID, o.Qty, o.Card); err != nil {
				return err
			}
			return s.emit(ctx, tx, s.t.placed, o)
		}); err != nil {
			return res, fmt.Errorf("place %s: %w", o.ID, err)
		}
	}
	fmt.Fprintf(out, "placed %d orders, each with its order-placed event in the same transaction\n", len(placed))

	// Wait until every order has ended, every copy of order-placed was
	// delivered and the outbox is empty.
	for {
		done, err := s.finished(ctx, cfg.Orders)
		if err != nil {
			return res, err
		}
		if done {
			break
		}
		for _, sub := range subs {
			select {
			case <-sub.Done():
				return res, fmt.Errorf("a service stopped: %w", sub.Err())
			default:
			}
		}
		select {
		case <-time.After(50 * time.Millisecond): // polling the database: the state is there, not in a channel
		case <-ctx.Done():
			return res, fmt.Errorf("saga not finished: %w", ctx.Err())
		}
	}

	res, err = s.check(ctx, cfg, placed)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "relay: the broker's ack of every order-placed was lost once, so it published each again; the inbox dropped %d copies\n", res.Duplicates)
	fmt.Fprintf(out, "payments: %d cards charged, %d declined; crashed right after charging order-001, which rolled back the charge with its event, got the event again (attempt %d) and charged once\n",
		res.Charged, res.Declined, res.Recovered)
	fmt.Fprintf(out, "orders: %d confirmed, %d cancelled (payment failed → stock released → order cancelled)\n", res.Confirmed, res.Cancelled)
	if len(res.Problems) > 0 {
		return res, fmt.Errorf("inconsistent end state:\n  %s", strings.Join(res.Problems, "\n  "))
	}
	fmt.Fprintf(out, "consistent: stock %d → %d, %d cards charged for %d confirmed orders, no stock held for cancelled orders\n",
		cfg.Stock, res.StockAfter, res.Charged, res.Confirmed)
	return res, nil
}

// count counts the deliveries handled without error; the services count
// what they applied, so the difference is what the inbox dropped.
func (s *saga) count(h mq.Handler) mq.Handler {
	return func(ctx context.Context, m *mq.Message) error {
		if err := h(ctx, m); err != nil {
			return err
		}
		s.deliveries.Add(1)
		return nil
	}
}

// done is called by a service handler that is about to return nil.
// Its transaction may still fail to commit; then the broker delivers the
// message again, and that run counts once more, which check tolerates.
func (s *saga) done() error {
	s.applied.Add(1)
	return nil
}

// emit writes one saga event into the outbox, in tx.
func (s *saga) emit(ctx context.Context, tx *sql.Tx, topic string, o order) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return outbox.Publisher(tx, s.d).Publish(ctx, topic, &mq.Message{Key: o.ID, Body: body})
}

// inTx runs f in a transaction of its own (the shop's).
func (s *saga) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func decode(m *mq.Message) (order, error) {
	var o order
	if err := json.Unmarshal(m.Body, &o); err != nil || o.ID == "" {
		return o, mq.Permanent(fmt.Errorf("bad event %s on %s: %v", m.ID, m.Topic, err))
	}
	return o, nil
}

// reserve (inventory) takes the order's units from stock and announces
// stock-reserved.
func (s *saga) reserve(ctx context.Context, m *mq.Message) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	tx := outbox.Tx(ctx)
	if _, err := tx.ExecContext(ctx, q(s.d, "UPDATE stock SET units = units - $1 WHERE item = 'widget'"), o.Qty); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q(s.d, "INSERT INTO reservations (order_id, qty) VALUES ($1, $2)"), o.ID, o.Qty); err != nil {
		return err
	}
	if err := s.emit(ctx, tx, s.t.reserved, o); err != nil {
		return err
	}
	return s.done()
}

// release (inventory) puts a failed order's units back and announces
// stock-released.
func (s *saga) release(ctx context.Context, m *mq.Message) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	tx := outbox.Tx(ctx)
	res, err := tx.ExecContext(ctx, q(s.d, "UPDATE reservations SET released = 1 WHERE order_id = $1 AND released = 0"), o.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return mq.Permanent(fmt.Errorf("inventory: %s has no reservation to release (%v)", o.ID, err))
	}
	if _, err := tx.ExecContext(ctx, q(s.d, "UPDATE stock SET units = units + (SELECT qty FROM reservations WHERE order_id = $1) WHERE item = 'widget'"), o.ID); err != nil {
		return err
	}
	if err := s.emit(ctx, tx, s.t.released, o); err != nil {
		return err
	}
	return s.done()
}

// charge (payments) charges the card of an order whose stock is reserved
// and announces the outcome.
func (s *saga) charge(ctx context.Context, m *mq.Message) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if m.ID == s.crashedMsg && s.recovered == 0 {
		s.recovered = m.Attempt
	}
	s.mu.Unlock()
	outcome, topic := "declined", s.t.paymentFailed
	if o.Card == "ok" {
		outcome, topic = "charged", s.t.paid
	}
	tx := outbox.Tx(ctx)
	if _, err := tx.ExecContext(ctx, q(s.d, "INSERT INTO payments (order_id, outcome) VALUES ($1, $2)"), o.ID, outcome); err != nil {
		return err
	}
	if err := s.emit(ctx, tx, topic, o); err != nil {
		return err
	}
	s.mu.Lock()
	crash := o.ID == s.crashOn && outcome == "charged"
	if crash {
		s.crashOn, s.crashedMsg = "", m.ID
	}
	s.mu.Unlock()
	if crash {
		// The charge and its event are written but not committed: the
		// error rolls them back with the inbox record, and the broker
		// delivers the message again.
		return errors.New("payments: crashed after charging the card")
	}
	return s.done()
}

// confirm and cancel (orders) end an order.
func (s *saga) confirm(ctx context.Context, m *mq.Message) error { return s.end(ctx, m, "confirmed") }
func (s *saga) cancel(ctx context.Context, m *mq.Message) error  { return s.end(ctx, m, "cancelled") }

func (s *saga) end(ctx context.Context, m *mq.Message, status string) error {
	o, err := decode(m)
	if err != nil {
		return err
	}
	res, err := outbox.Tx(ctx).ExecContext(ctx, q(s.d, "UPDATE orders SET status = $1 WHERE id = $2 AND status = 'placed'"), status, o.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return mq.Permanent(fmt.Errorf("orders: %s is not placed, cannot become %s (%v)", o.ID, status, err))
	}
	return s.done()
}

// finished reports whether every order has ended, the inbox has dropped
// a copy of every order-placed and the outbox is empty.
func (s *saga) finished(ctx context.Context, orders int) (bool, error) {
	var open, pending int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE status = 'placed'").Scan(&open); err != nil {
		return false, err
	}
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+outbox.OutboxTable).Scan(&pending); err != nil {
		return false, err
	}
	return open == 0 && pending == 0 && s.deliveries.Load()-s.applied.Load() >= int64(orders), nil
}

// check reads the services' tables and compares them, order by order.
func (s *saga) check(ctx context.Context, cfg config, placed []order) (result, error) {
	var res result
	problem := func(format string, args ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, args...)) }
	want := cfg.Stock
	for _, o := range placed {
		var status string
		var reserved, released sql.NullInt64
		var payment sql.NullString
		err := s.db.QueryRowContext(ctx, q(s.d, `SELECT o.status, p.outcome, r.qty, r.released
			FROM orders o LEFT JOIN payments p ON p.order_id = o.id LEFT JOIN reservations r ON r.order_id = o.id
			WHERE o.id = $1`), o.ID).Scan(&status, &payment, &reserved, &released)
		if err != nil {
			return res, err
		}
		switch status {
		case "confirmed":
			res.Confirmed++
			want -= o.Qty
			if payment.String != "charged" {
				problem("%s confirmed but its payment is %q", o.ID, payment.String)
			}
			if reserved.Int64 != int64(o.Qty) || released.Int64 != 0 {
				problem("%s confirmed but holds %d units (released: %d), want %d", o.ID, reserved.Int64, released.Int64, o.Qty)
			}
		case "cancelled":
			res.Cancelled++
			if payment.String == "charged" {
				problem("%s cancelled but its card was charged", o.ID)
			}
			if released.Int64 != 1 {
				problem("%s cancelled but its stock was not released", o.ID)
			}
		default:
			problem("%s ended %q, want confirmed or cancelled", o.ID, status)
		}
	}
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM payments WHERE outcome = 'charged'").Scan(&res.Charged); err != nil {
		return res, err
	}
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM payments WHERE outcome = 'declined'").Scan(&res.Declined); err != nil {
		return res, err
	}
	if res.Charged != res.Confirmed {
		problem("%d cards charged for %d confirmed orders", res.Charged, res.Confirmed)
	}
	if err := s.db.QueryRowContext(ctx, "SELECT units FROM stock WHERE item = 'widget'").Scan(&res.StockAfter); err != nil {
		return res, err
	}
	if res.StockAfter != want {
		problem("stock is %d, want %d", res.StockAfter, want)
	}
	s.mu.Lock()
	res.Recovered = s.recovered
	s.mu.Unlock()
	res.Duplicates = int(s.deliveries.Load() - s.applied.Load())
	return res, nil
}

// lostAcks is the relay's publisher: the broker accepts every message,
// but the first ack of each message on topic is lost (Publish fails after
// the broker stored it), so the relay publishes it again.
type lostAcks struct {
	mq.Publisher
	topic string

	mu   sync.Mutex
	seen map[string]bool
}

func (p *lostAcks) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := p.Publisher.Publish(ctx, topic, msgs...); err != nil || topic != p.topic {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lost := false
	for _, m := range msgs {
		if !p.seen[m.ID] {
			p.seen[m.ID], lost = true, true
		}
	}
	if lost {
		return errors.New("connection reset before the broker's ack arrived")
	}
	return nil
}

// openDB opens the saga's database: a SQLite file in a temporary
// directory, or a schema of its own in the PostgreSQL of cfg.DB. close
// removes what it made.
func openDB(ctx context.Context, cfg config) (db *sql.DB, d *outbox.Dialect, where string, close func() error, err error) {
	if cfg.DB == "" {
		dir, err := os.MkdirTemp("", "saga-")
		if err != nil {
			return nil, nil, "", nil, err
		}
		path := dir + "/saga.db"
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, "", nil, err
		}
		return db, outbox.SQLite, "SQLite " + path, func() error { return errors.Join(db.Close(), os.RemoveAll(dir)) }, nil
	}
	schema := strings.ReplaceAll(strings.TrimSuffix(cfg.Prefix, "-"), "-", "_")
	admin, err := sql.Open("pgx", cfg.DB)
	if err != nil {
		return nil, nil, "", nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, nil, "", nil, fmt.Errorf("PostgreSQL at the DSN: %w", err)
	}
	dsn := cfg.DB
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "search_path=" + schema
	} else {
		dsn += " search_path=" + schema
	}
	db, err = sql.Open("pgx", dsn)
	if err != nil {
		return nil, nil, "", nil, err
	}
	drop := func() error {
		cerr := db.Close()
		a, err := sql.Open("pgx", cfg.DB)
		if err != nil {
			return errors.Join(cerr, err)
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = a.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
		return errors.Join(cerr, err)
	}
	return db, outbox.Postgres, "PostgreSQL, schema " + schema, drop, nil
}

// q writes a statement with PostgreSQL's $n placeholders for d: SQLite
// takes ?n.
func q(d *outbox.Dialect, s string) string {
	if d == outbox.SQLite {
		return strings.ReplaceAll(s, "$", "?")
	}
	return s
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
