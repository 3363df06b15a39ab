package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strconv"
	"strings"
	"time"
)

// Why relays lock before they sleep: NOTIFY makes PostgreSQL serialize
// the commits of all notifying transactions behind one lock, so a trigger
// that notified on every outbox write cut the commit rate of concurrent
// writers by about three (pgbench, 4 clients: 4891 tps without the
// trigger, 1597 with it). Writers need to notify only when a relay
// sleeps. The schema's trigger runs at commit and tries to take the
// outbox table's advisory lock in shared mode: it gets it unless a relay
// holds it (or waits for it) in exclusive mode, and then it notifies.
// A relay about to sleep takes the lock in exclusive mode, which waits
// for the writers committing at that moment (they hold it shared until
// their commit is visible), claims once more, and sleeps holding it; it
// unlocks when it wakes. So a write that commits while a relay sleeps
// either notifies or was committed before the relay's last claim.
//
// Several relays: one holds the lock while it sleeps; the others, whose
// lock times out, sleep without it, and the writers' notifications wake
// them all. A relay whose lock connection fails sleeps without it too;
// it then relies on polling until the lock works again.

// sleepLockTimeout bounds a relay's wait for the lock: writers hold it
// only while they commit, so a longer wait means another relay sleeps
// holding it.
const sleepLockTimeout = 200 * time.Millisecond

// The advisory lock key: a class of the package's own and the outbox
// table's OID, as the trigger in schema/postgres.sql computes them.
const (
	sleepLockSQL   = `SELECT pg_advisory_lock(1836150626, ('mq_outbox'::regclass::oid::bigint % 2147483647)::int4)`
	sleepUnlockSQL = `SELECT pg_advisory_unlock(1836150626, ('mq_outbox'::regclass::oid::bigint % 2147483647)::int4)`
)

// sleepLock is one relay's hold on the lock, on a connection of its own.
type sleepLock struct {
	r    *Relay
	conn *sql.Conn
}

// lock takes the lock for a relay about to sleep, and reports whether it
// did. It does nothing (false) on SQLite and for relays without a
// Listener, which no notification would wake.
func (l *sleepLock) lock(ctx context.Context) bool {
	if l.r.d != Postgres || l.r.o.Listener == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if l.conn == nil {
		c, err := l.r.db.Conn(ctx)
		if err != nil {
			return false
		}
		l.conn = c
		if _, err := c.ExecContext(ctx, "SET lock_timeout = "+strconv.FormatInt(sleepLockTimeout.Milliseconds(), 10)); err != nil {
			l.close()
			return false
		}
	}
	if _, err := l.conn.ExecContext(ctx, sleepLockSQL); err != nil {
		// Another relay sleeps holding it (lock_timeout), or the
		// connection failed: sleep without it.
		if ctx.Err() != nil || !isLockTimeout(err) {
			l.close()
		}
		return false
	}
	return true
}

func (l *sleepLock) unlock(ctx context.Context) {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := l.conn.ExecContext(ctx, sleepUnlockSQL); err != nil {
		l.close() // the session's end releases the lock
	}
}

// close discards the connection instead of returning it to db's pool,
// where its lock_timeout (and a lock it might still hold) would stay.
func (l *sleepLock) close() {
	if l.conn != nil {
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
		l.conn.Close()
		l.conn = nil
	}
}

// isLockTimeout reports whether err is PostgreSQL's lock_not_available
// (SQLSTATE 55P03), what lock_timeout raises.
func isLockTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "55P03")
}
