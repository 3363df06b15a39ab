package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/outbox"
	"github.com/seedmq/mq/outbox/pgxlisten"
)

// While the broker refuses every publish, rows wait; once it accepts
// again they drain, each key in order, and the lag gauges showed them.
func TestBrokerDownThenUp(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		down := errors.New("broker down")
		b.InjectPublishErrors(down, down, down, down, down, down, down, down)
		rec := &recorder{inner: b}
		reader := metric.NewManualReader()
		mp := metric.NewMeterProvider(metric.WithReader(reader))
		const n, keys = 60, 4
		for i := range n {
			write(t, db, d, "t", &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", i%keys)})
		}
		r := outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: rec, PollInterval: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MeterProvider: mp})
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitFor(t, 10*time.Second, "the outage to be seen", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return rec.fails >= 8
		})
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		if got := gauge(rm, outbox.MetricPending); got <= 0 {
			t.Errorf("%s during the outage: got %v, want > 0", outbox.MetricPending, got)
		}
		if got := gauge(rm, outbox.MetricOldestAge); got <= 0 {
			t.Errorf("%s during the outage: got %v, want > 0", outbox.MetricOldestAge, got)
		}
		waitFor(t, 20*time.Second, "outbox drained", func() bool { return pending(t, db) == 0 })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: got %v, want context.Canceled", err)
		}
		checkKeyOrder(t, rec.snapshot(), n, keys)
	})
}

func gauge(rm metricdata.ResourceMetrics, name string) float64 {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch g := m.Data.(type) {
			case metricdata.Gauge[int64]:
				return float64(g.DataPoints[0].Value)
			case metricdata.Gauge[float64]:
				return g.DataPoints[0].Value
			}
		}
	}
	return -1
}

// A key whose earliest row keeps failing holds back only that key.
func TestFailingKeyBlocksOnlyItself(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		rec := &recorder{inner: b}
		rec.before = func(_ string, msgs []*mq.Message) error {
			for _, m := range msgs {
				if m.ID == "m0" {
					return errors.New("poison")
				}
			}
			return nil
		}
		for i := range 12 {
			write(t, db, d, "t", &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", i%3)})
		}
		r := outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: rec, MaxBackoff: 50 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := 0; i < 50 && pending(t, db) > 4; i++ {
			if _, _, err := r.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := pending(t, db); got != 4 {
			t.Fatalf("got %d rows left, want the 4 of key k0", got)
		}
		for _, m := range rec.snapshot() {
			if m.Key == "k0" {
				t.Fatalf("message %s of the blocked key k0 was published", m.ID)
			}
		}
		rec.before = nil
		drain(t, db, r)
		checkKeyOrder(t, rec.snapshot(), 12, 3)
	})
}

func TestDelay(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		rec := &recorder{inner: b}
		const delay = 700 * time.Millisecond
		start := time.Now()
		write(t, db, d, "t", &mq.Message{ID: "late", Key: "k", Delay: delay}, &mq.Message{ID: "now", Key: "k"})
		r := outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: rec, PollInterval: 10 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		go r.Run(ctx)
		waitFor(t, 5*time.Second, "both messages", func() bool { return len(rec.snapshot()) == 2 })
		sent := rec.snapshot()
		if sent[0].ID != "now" || sent[1].ID != "late" {
			t.Fatalf("got %s then %s, want now then late", sent[0].ID, sent[1].ID)
		}
		if el := time.Since(start); el < delay {
			t.Fatalf("late message published after %v, want >= %v", el, delay)
		}
		if sent[1].Delay != 0 {
			t.Fatalf("relay passed Delay %v to the broker, want 0", sent[1].Delay)
		}
	})
}

// The same message delivered three times (also concurrently) has one
// effect through the inbox; a failing handler's writes roll back with its
// record, so the redelivery applies them.
func TestInboxOneEffect(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx := context.Background()
		if _, err := db.Exec("CREATE TABLE counter (n INTEGER NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO counter (n) VALUES (0)"); err != nil {
			t.Fatal(err)
		}
		var runs atomic.Int32
		failFirst := true
		var mu sync.Mutex
		h := outbox.Inbox(db, d, outbox.InboxOptions{})(func(ctx context.Context, m *mq.Message) error {
			runs.Add(1)
			tx := outbox.Tx(ctx)
			if tx == nil {
				return errors.New("no transaction in ctx")
			}
			if _, err := tx.ExecContext(ctx, "UPDATE counter SET n = n + 1"); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if failFirst {
				failFirst = false
				return errors.New("first run fails after its write")
			}
			return nil
		})
		m := &mq.Message{ID: "once", Group: "billing"}
		if err := h(ctx, m); err == nil {
			t.Fatal("first delivery: got nil, want the handler's error")
		}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = h(ctx, m.Clone()) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("delivery %d: %v", i+2, err)
			}
		}
		var n int
		if err := db.QueryRow("SELECT n FROM counter").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("counter: got %d, want 1 (one effect); handler ran %d times", n, runs.Load())
		}
		// Another group applies it once too.
		if err := h(ctx, &mq.Message{ID: "once", Group: "audit"}); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT n FROM counter").Scan(&n); err != nil || n != 2 {
			t.Fatalf("counter after group audit: got %d (%v), want 2", n, err)
		}
		if got, err := outbox.CleanInbox(ctx, db, d, -time.Second); err != nil || got != 2 {
			t.Fatalf("CleanInbox: got %d, %v; want 2 records removed", got, err)
		}
	})
}

// Through a real subscription on the memory broker: the relay's output
// redelivered three times is applied once.
func TestInboxThroughBroker(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		if err := mq.Provision(ctx, b, "orders", "billing"); err != nil {
			t.Fatal(err)
		}
		m := &mq.Message{ID: "dup", Body: []byte("1")}
		write(t, db, d, "orders", m)
		drain(t, db, outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: b}))
		// The broker redelivers it twice more (as after two lost acks).
		for range 2 {
			if err := b.Publish(ctx, "orders", &mq.Message{ID: "dup", Body: []byte("1")}); err != nil {
				t.Fatal(err)
			}
		}
		var applied, seen atomic.Int32
		h := outbox.Inbox(db, d, outbox.InboxOptions{})(func(ctx context.Context, m *mq.Message) error {
			applied.Add(1)
			return nil
		})
		go b.Subscribe(ctx, "orders", func(ctx context.Context, m *mq.Message) error {
			defer seen.Add(1)
			return h(ctx, m)
		}, mq.Group("billing"))
		waitFor(t, 10*time.Second, "three deliveries", func() bool { return seen.Load() == 3 })
		if got := applied.Load(); got != 1 {
			t.Fatalf("handler applied %d times, want 1", got)
		}
	})
}

func TestListenWakesRelay(t *testing.T) {
	for _, c := range databases() {
		if c.d != outbox.Postgres {
			continue
		}
		db, _, _ := c.open(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := outbox.Migrate(ctx, db, c.d); err != nil {
			t.Fatal(err)
		}
		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		rec := &recorder{inner: b}
		r := outbox.NewRelay(db, c.d, outbox.RelayOptions{Publisher: rec, PollInterval: time.Minute, Listener: pgxlisten.New(db)})
		go r.Run(ctx)
		time.Sleep(300 * time.Millisecond) // the first poll is done; the next is a minute away
		write(t, db, c.d, "t", &mq.Message{ID: "woken"})
		waitFor(t, 5*time.Second, "the notification to wake the relay", func() bool { return len(rec.snapshot()) == 1 })
		// The trigger notifies writes to an empty outbox only: a burst
		// notifies once and the relay claims until the table is empty;
		// the next write after it wakes the relay again.
		for i := range 50 {
			write(t, db, c.d, "t", &mq.Message{ID: fmt.Sprint("burst", i)})
		}
		waitFor(t, 5*time.Second, "the burst relayed without polling", func() bool { return len(rec.snapshot()) == 51 })
		time.Sleep(500 * time.Millisecond) // the relay has gone to sleep (200ms after it last sent)
		write(t, db, c.d, "t", &mq.Message{ID: "after"})
		waitFor(t, 5*time.Second, "the write after the burst to wake the relay", func() bool { return len(rec.snapshot()) == 52 })
	}
}

func TestSchema(t *testing.T) {
	for _, d := range []*outbox.Dialect{outbox.Postgres, outbox.SQLite} {
		s := outbox.Schema(d)
		if !strings.Contains(s, "CREATE TABLE IF NOT EXISTS mq_outbox") || !strings.Contains(s, "CREATE TABLE IF NOT EXISTS mq_inbox") {
			t.Errorf("Schema(%s) lacks the tables:\n%s", d, s)
		}
	}
}

// Writers send NOTIFY only while a relay with a Listener sleeps: NOTIFY
// serializes the commits of notifying transactions, so the trigger sends
// nothing when no relay waits for it.
func TestNotifyOnlyWhileRelaySleeps(t *testing.T) {
	for _, c := range databases() {
		if c.d != outbox.Postgres {
			continue
		}
		db, _, _ := c.open(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := outbox.Migrate(ctx, db, c.d); err != nil {
			t.Fatal(err)
		}
		var notes atomic.Int32
		go pgxlisten.New(db).Listen(ctx, func() { notes.Add(1) })
		waitFor(t, 5*time.Second, "LISTEN", func() bool { return notes.Load() == 1 }) // Listen wakes once after LISTEN
		for i := range 20 {
			write(t, db, c.d, "t", &mq.Message{ID: fmt.Sprint("quiet", i)})
		}
		time.Sleep(300 * time.Millisecond)
		if got := notes.Load() - 1; got != 0 {
			t.Fatalf("no relay sleeping: got %d notifications for 20 writes, want 0", got)
		}
		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		rec := &recorder{inner: b}
		go outbox.NewRelay(db, c.d, outbox.RelayOptions{Publisher: rec, PollInterval: time.Minute, Listener: pgxlisten.New(db)}).Run(ctx)
		waitFor(t, 5*time.Second, "the relay to send the 20 rows", func() bool { return len(rec.snapshot()) == 20 })
		before := notes.Load()
		time.Sleep(500 * time.Millisecond) // the relay is asleep, holding the lock (200ms after it last sent)
		write(t, db, c.d, "t", &mq.Message{ID: "loud"})
		waitFor(t, 5*time.Second, "a notification for the write while the relay sleeps", func() bool { return notes.Load() > before })
		waitFor(t, 5*time.Second, "the sleeping relay woken", func() bool { return len(rec.snapshot()) == 21 })
	}
}
