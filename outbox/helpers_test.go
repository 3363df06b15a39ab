package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/outbox"
)

// dbCase is one database the tests run on.
type dbCase struct {
	name string
	d    *outbox.Dialect
	open func(t *testing.T) (db *sql.DB, driver, dsn string)
}

// databases lists SQLite (a fresh file per test) and PostgreSQL (a fresh
// schema per test on MQ_TEST_POSTGRES_DSN, from scripts/brokers).
func databases() []dbCase {
	return []dbCase{
		{"sqlite", outbox.SQLite, openSQLite},
		{"postgres", outbox.Postgres, openPostgres},
	}
}

// forEachDB runs f as a subtest on each database, with the schema applied.
func forEachDB(t *testing.T, f func(t *testing.T, db *sql.DB, d *outbox.Dialect)) {
	for _, c := range databases() {
		t.Run(c.name, func(t *testing.T) {
			db, _, _ := c.open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := outbox.Migrate(ctx, db, c.d); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			f(t, db, c.d)
		})
	}
}

// openSQLite opens a fresh SQLite file and returns it with the driver
// name and DSN that open it again (from another process, say).
func openSQLite(t *testing.T) (*sql.DB, string, string) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	dsn := "file:" + path + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, "sqlite", dsn
}

// openPostgres opens a fresh schema of the PostgreSQL at
// MQ_TEST_POSTGRES_DSN, as openSQLite does.
func openPostgres(t *testing.T) (*sql.DB, string, string) {
	dsn := os.Getenv("MQ_TEST_POSTGRES_DSN")
	if dsn == "" {
		msg := "MQ_TEST_POSTGRES_DSN is not set: run scripts/brokers up postgres and eval \"$(scripts/brokers env)\""
		if os.Getenv("MQ_TEST_REQUIRE_BROKERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "outbox_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("PostgreSQL at MQ_TEST_POSTGRES_DSN: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", dsn)
		if err != nil {
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	dsn += "&search_path=" + schema
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, "pgx", dsn
}

// recorder is an mq.Publisher wrapper that records, in order, the
// messages its inner publisher accepted.
type recorder struct {
	inner mq.Publisher
	// before, when set, may fail a call before it reaches inner.
	before func(topic string, msgs []*mq.Message) error
	// after, when set, may turn an accepted call into an error (the ack
	// was lost).
	after func(topic string, msgs []*mq.Message) error

	mu    sync.Mutex
	sent  []*mq.Message
	calls int
	fails int
}

func (r *recorder) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	if r.before != nil {
		if err := r.before(topic, msgs); err != nil {
			r.mu.Lock()
			r.fails++
			r.mu.Unlock()
			return err
		}
	}
	if err := r.inner.Publish(ctx, topic, msgs...); err != nil {
		r.mu.Lock()
		r.fails++
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	for _, m := range msgs {
		c := m.Clone()
		c.Topic = topic
		r.sent = append(r.sent, c)
	}
	r.mu.Unlock()
	if r.after != nil {
		return r.after(topic, msgs)
	}
	return nil
}

func (r *recorder) Close(ctx context.Context) error { return r.inner.Close(ctx) }

func (r *recorder) snapshot() []*mq.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*mq.Message(nil), r.sent...)
}

// write publishes msgs to topic through the outbox in one committed
// transaction.
func write(t *testing.T, db *sql.DB, d *outbox.Dialect, topic string, msgs ...*mq.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Publisher(tx, d).Publish(ctx, topic, msgs...); err != nil {
		tx.Rollback()
		t.Fatalf("Publish: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// pending returns the number of rows in the outbox table.
func pending(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM mq_outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// drain calls RunOnce until the table is empty, bounded in rounds and time.
func drain(t *testing.T, db *sql.DB, r *outbox.Relay) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 1000; i++ {
		if pending(t, db) == 0 {
			return
		}
		if _, _, err := r.RunOnce(ctx); err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
	}
	t.Fatalf("outbox not drained: %d rows left", pending(t, db))
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
