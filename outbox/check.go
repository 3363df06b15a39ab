package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// ErrWrongDialect is wrapped by the errors that say the database is not
// of the Dialect passed with it: a PostgreSQL *sql.DB or *sql.Tx with
// SQLite, or the reverse. The error names the dialect to pass instead.
var ErrWrongDialect = errors.New("outbox: wrong dialect")

// version asks the database for its version in d's SQL. Each dialect's
// statement fails on the other database.
func (d *Dialect) version(ctx context.Context, db *sql.DB) (string, error) {
	var v string
	err := db.QueryRowContext(ctx, d.versionSQL).Scan(&v)
	return v, err
}

// CheckDialect asks db which database it is and returns nil when it is
// one of d's, or an error wrapping ErrWrongDialect that names the dialect
// to pass. When neither dialect's question gets an answer (the database
// is down, say), it returns the error of d's question instead. It costs
// one query, two when the dialect is wrong.
//
// Migrate, Relay and Inbox call it once on first use of their *sql.DB;
// call it at start-up to fail there. Publisher does not, to spare each
// transaction a round trip: its first write with the wrong dialect fails
// with an error wrapping ErrWrongDialect instead.
func CheckDialect(ctx context.Context, db *sql.DB, d *Dialect) error {
	v, err := d.version(ctx, db)
	if err == nil {
		if d == Postgres && !strings.HasPrefix(v, "PostgreSQL") {
			return fmt.Errorf("%w: outbox.Postgres was passed, but the database says it is %q; outbox supports PostgreSQL and SQLite", ErrWrongDialect, v)
		}
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("outbox: check the database's dialect: %w", err)
	}
	other := otherDialect(d)
	if _, oerr := other.version(ctx, db); oerr == nil {
		return wrongDialect(d, nil)
	}
	return fmt.Errorf("outbox: check that the database is %s: %w", d.title, err)
}

func otherDialect(d *Dialect) *Dialect {
	if d == Postgres {
		return SQLite
	}
	return Postgres
}

// wrongDialect is the error for a database of the other dialect than d,
// wrapping cause when it is not nil.
func wrongDialect(d *Dialect, cause error) error {
	o := otherDialect(d)
	msg := fmt.Sprintf("the database is %s, but outbox.%s was passed: pass outbox.%s, the dialect of the database that the *sql.DB or *sql.Tx belongs to",
		o.title, dialectVar(d), dialectVar(o))
	if cause != nil {
		return fmt.Errorf("%w: %s: %w", ErrWrongDialect, msg, cause)
	}
	return fmt.Errorf("%w: %s", ErrWrongDialect, msg)
}

// otherDatabase reports whether err, returned for one of d's statements,
// is in the style of the other database's errors: PostgreSQL errors (as
// pgx and lib/pq print them) from a SQLite dialect's statement, or
// SQLite's "near ...: syntax error" from PostgreSQL's. Statements of the
// package fail like this only on the other database: the PostgreSQL
// INSERT carries a clause (OVERRIDING USER VALUE) that SQLite rejects.
func otherDatabase(d *Dialect, err error) bool {
	msg := err.Error()
	if d == SQLite {
		return strings.Contains(msg, "(SQLSTATE ") || strings.HasPrefix(msg, "pq: ")
	}
	return strings.Contains(msg, "SQL logic error") || (strings.Contains(msg, `near "`) && strings.Contains(msg, `": syntax error`))
}
