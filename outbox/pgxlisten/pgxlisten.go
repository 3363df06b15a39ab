// Package pgxlisten wakes outbox relays with PostgreSQL's LISTEN/NOTIFY,
// for databases opened with pgx's database/sql driver
// (github.com/jackc/pgx/v5/stdlib). It is a package of its own so that
// package outbox depends on database/sql alone.
//
//	relay := outbox.NewRelay(db, outbox.Postgres, outbox.RelayOptions{
//		Publisher: broker,
//		Listener:  pgxlisten.New(db),
//	})
//
// The schema's trigger sends NOTIFY mq_outbox when a transaction that
// inserted outbox rows commits while a relay with a Listener sleeps
// (busy relays claim until the table is empty and need no wake-up).
package pgxlisten

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"
)

// Channel is the notification channel the outbox schema's trigger uses.
const Channel = "mq_outbox"

// Listener holds one connection of db for LISTEN while Listen runs.
type Listener struct{ db *sql.DB }

// New returns a listener on db, which must have been opened with pgx's
// "pgx" driver.
func New(db *sql.DB) *Listener { return &Listener{db: db} }

// Listen takes a connection from db, runs LISTEN mq_outbox on it and calls
// wake for each notification until ctx ends or the connection fails. It
// returns ctx.Err() or the failure; the connection is discarded, not put
// back into the pool, since it still listens.
func (l *Listener) Listen(ctx context.Context, wake func()) error {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("pgxlisten: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("pgxlisten: the database was not opened with pgx's database/sql driver (got %T); open it with sql.Open(\"pgx\", dsn)", dc)
		}
		pc := c.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+Channel); err != nil {
			return fmt.Errorf("pgxlisten: %w", err)
		}
		wake() // rows may have arrived before LISTEN took effect
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				if ctx.Err() != nil {
					// The connection is unusable mid-wait; make the pool drop it.
					_ = pc.Close(context.Background())
					return ctx.Err()
				}
				_ = pc.Close(context.Background())
				return fmt.Errorf("pgxlisten: %w", err)
			}
			wake()
		}
	})
}
