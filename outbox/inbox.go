package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/seedmq/mq"
)

// InboxOptions configures Inbox.
type InboxOptions struct {
	// Group names the consumer in the inbox table when a delivered message
	// carries no Message.Group. Default "default".
	Group string

	// TxOptions are used to begin each handler's transaction. Default nil
	// (the database's default isolation).
	TxOptions *sql.TxOptions
}

type txKey struct{}

// Tx returns the transaction Inbox opened for the handler run that ctx
// belongs to, or nil outside one. The handler makes its own writes (and
// its outgoing messages, through Publisher(tx, d)) in it, so they commit
// together with the record that the message was handled.
func Tx(ctx context.Context) *sql.Tx {
	tx, _ := ctx.Value(txKey{}).(*sql.Tx)
	return tx
}

// Inbox returns handler middleware that makes a handler idempotent per
// (group, message ID): the idempotent consumer. For each delivery it
// begins a transaction on db, inserts (Message.Group, Message.ID) into the
// inbox table and runs the handler with the transaction in its ctx (see
// Tx). When the handler returns nil the transaction commits: the handler's
// writes and the record commit together, or neither does. When the
// handler fails, it rolls back and the error goes to the broker, which
// redelivers. A message whose (group, ID) is already recorded is
// acknowledged without running the handler.
//
// Concurrent deliveries of one message (competing consumers, a lease that
// ran out) are serialized by the inbox table's primary key: the second
// waits for the first's transaction and then sees the record, or runs if
// the first rolled back.
//
// Records are kept until CleanInbox removes them; keep them longer than
// the broker may redeliver a message (its retention or the dead-letter
// limit). d is db's dialect: the first delivery checks it (see
// CheckDialect), and while the check fails, deliveries fail with its
// error and are not handled.
func Inbox(db *sql.DB, d *Dialect, o InboxOptions) mq.Middleware {
	if db == nil || d == nil {
		panic("outbox: Inbox needs a database and a dialect")
	}
	if o.Group == "" {
		o.Group = "default"
	}
	var insert string
	if d == Postgres {
		insert = `INSERT INTO mq_inbox (grp, id, processed_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	} else {
		insert = d.q(`INSERT OR IGNORE INTO mq_inbox (grp, id, processed_us) VALUES ($1, $2, $3)`)
	}
	var checked atomic.Bool
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) (err error) {
			if !checked.Load() {
				if err := CheckDialect(ctx, db, d); err != nil {
					return fmt.Errorf("outbox: inbox: %w", err)
				}
				checked.Store(true)
			}
			group := m.Group
			if group == "" {
				group = o.Group
			}
			if m.ID == "" {
				return mq.Permanent(fmt.Errorf("outbox: inbox: message has no ID to deduplicate by"))
			}
			tx, err := db.BeginTx(ctx, o.TxOptions)
			if err != nil {
				return explain("inbox", d, err)
			}
			defer func() {
				if err != nil {
					tx.Rollback() //nolint:errcheck // the handler's error is the one to report
				}
			}()
			res, err := tx.ExecContext(ctx, insert, group, m.ID, time.Now().UnixMicro())
			if err != nil {
				return explain("inbox", d, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return explain("inbox", d, err)
			}
			if n == 0 {
				// Handled before: acknowledge without running the handler.
				return explain("inbox", d, tx.Rollback())
			}
			if err := next(context.WithValue(ctx, txKey{}, tx), m); err != nil {
				return err
			}
			if err := tx.Commit(); err != nil {
				return explain("inbox commit", d, err)
			}
			return nil
		}
	}
}

// CleanInbox deletes the inbox records older than olderThan and returns
// how many it deleted. Run it periodically (for example hourly, with
// olderThan well beyond the broker's retention): a message redelivered
// after its record is gone is handled again.
func CleanInbox(ctx context.Context, db *sql.DB, d *Dialect, olderThan time.Duration) (int64, error) {
	res, err := db.ExecContext(ctx, d.q("DELETE FROM mq_inbox WHERE processed_us < $1"), time.Now().Add(-olderThan).UnixMicro())
	if err != nil {
		return 0, explain("clean inbox", d, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, explain("clean inbox", d, err)
	}
	return n, nil
}
