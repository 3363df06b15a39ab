package outbox_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/outbox"
	"github.com/seedmq/mq/outbox/pgxlisten"
)

func TestRolledBackNeverPublished(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx := context.Background()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Publisher(tx, d).Publish(ctx, "orders", &mq.Message{ID: "rolled-back", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		body := []byte{0, 1, 2, 0xff, 'a'}
		write(t, db, d, "orders", &mq.Message{ID: "committed", Key: "k", Body: body, Header: map[string]string{"h": "v\x00ü", "e": ""}})
		b := newMemoryBroker(t)
		defer b.Close(ctx)
		rec := &recorder{inner: b}
		drain(t, db, outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: rec}))
		got := rec.snapshot()
		if len(got) != 1 {
			t.Fatalf("got %d messages published, want 1 (the committed one)", len(got))
		}
		m := got[0]
		if m.ID != "committed" || m.Key != "k" || !bytes.Equal(m.Body, body) || m.Header["h"] != "v\x00ü" || len(m.Header) != 2 || m.Topic != "orders" {
			t.Fatalf("got %+v, want the committed message intact", m)
		}
	})
}

func TestBadInput(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx := context.Background()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx.Commit()
		err = outbox.Publisher(tx, d).Publish(ctx, "t", mq.NewMessage(nil))
		if !errors.Is(err, sql.ErrTxDone) || !strings.Contains(err.Error(), "before tx.Commit") {
			t.Fatalf("closed tx: got %v, want sql.ErrTxDone naming the fix", err)
		}
		if _, err := db.Exec("DROP TABLE mq_outbox"); err != nil {
			t.Fatal(err)
		}
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		err = outbox.Publisher(tx, d).Publish(ctx, "t", mq.NewMessage(nil))
		if err == nil || !strings.Contains(err.Error(), "outbox.Migrate") {
			t.Fatalf("missing table: got %v, want an error naming outbox.Migrate", err)
		}
		for _, tc := range []struct {
			topic string
			msgs  []*mq.Message
		}{{"", []*mq.Message{{}}}, {"t", nil}, {"t", []*mq.Message{nil}}, {"t", []*mq.Message{{Header: map[string]string{"mq-x": ""}}}}} {
			if err := outbox.Publisher(tx, d).Publish(ctx, tc.topic, tc.msgs...); !errors.Is(err, mq.ErrInvalid) {
				t.Errorf("Publish(%q, %v): got %v, want mq.ErrInvalid", tc.topic, tc.msgs, err)
			}
		}
	})
}

// A relay that dies after the broker accepted a message but before it
// deleted the row sends the message again: a duplicate, never a loss.
func TestAckLostThenRelayDies(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx := context.Background()
		for i := range 20 {
			write(t, db, d, "t", &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", i%3)})
		}
		b := newMemoryBroker(t)
		defer b.Close(ctx)
		runCtx, kill := context.WithCancel(ctx)
		rec := &recorder{inner: b}
		rec.after = func(string, []*mq.Message) error {
			kill() // the relay dies right after the broker's ack
			return errors.New("connection reset")
		}
		const lease = 500 * time.Millisecond
		first := outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: rec, Lease: lease, PollInterval: 10 * time.Millisecond})
		if err := first.Run(runCtx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: got %v, want context.Canceled", err)
		}
		firstSent := len(rec.snapshot())
		if firstSent == 0 || pending(t, db) != 20 {
			t.Fatalf("after the crash: %d sent, %d rows left; want some sent and all 20 rows kept", firstSent, pending(t, db))
		}
		rec.after = nil
		second := outbox.NewRelay(db, d, outbox.RelayOptions{Publisher: rec, Lease: lease, PollInterval: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
		runCtx2, stop := context.WithTimeout(ctx, 20*time.Second)
		defer stop()
		go second.Run(runCtx2)
		waitFor(t, 15*time.Second, "outbox drained", func() bool { return pending(t, db) == 0 })
		stop()
		seen := map[string]int{}
		for _, m := range rec.snapshot() {
			seen[m.ID]++
		}
		dups := 0
		for i := range 20 {
			n := seen[fmt.Sprint("m", i)]
			if n == 0 {
				t.Errorf("message m%d lost", i)
			}
			dups += n - 1
		}
		if dups == 0 {
			t.Errorf("no duplicate: the messages sent before the crash should have been sent again")
		}
		checkKeyOrder(t, rec.snapshot(), 20, 3)
	})
}

// checkKeyOrder checks that, per key k<i%keys>, the first publication of
// each message m<i> comes in i order.
func checkKeyOrder(t *testing.T, sent []*mq.Message, n, keys int) {
	t.Helper()
	next := map[string]int{}
	for k := range keys {
		next[fmt.Sprint("k", k)] = k
	}
	seen := map[string]bool{}
	for _, m := range sent {
		if seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		var i int
		fmt.Sscanf(m.ID, "m%d", &i)
		if want := next[m.Key]; i != want {
			t.Fatalf("key %s: got m%d first published after m%d's predecessor, want m%d", m.Key, i, want-keys, want)
		}
		next[m.Key] += keys
	}
	if len(seen) != n {
		t.Fatalf("got %d distinct messages, want %d", len(seen), n)
	}
}

func TestThreeRelaysUnderLoad(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		rec := &recorder{inner: b}
		const n, keys = 600, 7
		o := outbox.RelayOptions{Publisher: rec, BatchSize: 25, PollInterval: 5 * time.Millisecond}
		if d == outbox.Postgres {
			// Woken by notifications alone: a missed wake-up would
			// leave rows waiting for a minute, past the test's limit.
			o.PollInterval, o.Listener = time.Minute, pgxlisten.New(db)
		}
		for range 3 {
			go outbox.NewRelay(db, d, o).Run(ctx)
		}
		// Writers insert while the relays run, one per key, so each key
		// is inserted in i order.
		errc := make(chan error, keys)
		for k := range keys {
			go func() {
				for i := k; i < n; i += keys {
					tx, err := db.BeginTx(ctx, nil)
					if err == nil {
						err = outbox.Publisher(tx, d).Publish(ctx, fmt.Sprint("t", i%2), &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", k)})
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
		sent := rec.snapshot()
		if len(sent) != n {
			t.Errorf("got %d publications of %d messages: a row was claimed twice or lost", len(sent), n)
		}
		checkKeyOrder(t, sent, n, keys)
	})
}

// newMemoryBroker opens an in-process broker for one test.
func newMemoryBroker(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(context.Background(), memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A *sql.DB or *sql.Tx of one database passed with the other's dialect is
// an error wrapping ErrWrongDialect that names the dialect to pass, from
// every entry point: Migrate, Publisher, Relay (whose Run ends), Inbox
// and CheckDialect.
func TestWrongDialect(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d *outbox.Dialect) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		wrong, fix := outbox.Postgres, "pass outbox.SQLite"
		if d == outbox.Postgres {
			wrong, fix = outbox.SQLite, "pass outbox.Postgres"
		}
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, outbox.ErrWrongDialect) || !strings.Contains(err.Error(), fix) {
				t.Errorf("%s with outbox.%s: got %v, want outbox.ErrWrongDialect saying %q", what, wrong, err, fix)
			}
		}
		if err := outbox.CheckDialect(ctx, db, d); err != nil {
			t.Fatalf("CheckDialect with the right dialect: %v", err)
		}
		check("CheckDialect", outbox.CheckDialect(ctx, db, wrong))
		check("Migrate", outbox.Migrate(ctx, db, wrong))

		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		check("Publish", outbox.Publisher(tx, wrong).Publish(ctx, "t", &mq.Message{ID: "x"}))
		tx.Rollback()

		b := newMemoryBroker(t)
		defer b.Close(context.Background())
		write(t, db, d, "t", &mq.Message{ID: "waiting"})
		rec := &recorder{inner: b}
		done := make(chan error, 1)
		go func() { done <- outbox.NewRelay(db, wrong, outbox.RelayOptions{Publisher: rec}).Run(ctx) }()
		select {
		case err := <-done:
			check("Relay.Run", err)
		case <-time.After(10 * time.Second):
			t.Fatal("Relay.Run with the wrong dialect still running after 10s, want it to return ErrWrongDialect")
		}
		if len(rec.snapshot()) != 0 || pending(t, db) != 1 {
			t.Errorf("the relay with the wrong dialect published %d messages, left %d rows; want 0 and 1", len(rec.snapshot()), pending(t, db))
		}

		ran := false
		h := outbox.Inbox(db, wrong, outbox.InboxOptions{})(func(context.Context, *mq.Message) error { ran = true; return nil })
		check("Inbox", h(ctx, &mq.Message{ID: "x"}))
		if ran {
			t.Error("the inbox with the wrong dialect ran the handler")
		}
	})
}
