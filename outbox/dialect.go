package outbox

import (
	"regexp"
	"strconv"
	"strings"
)

// Dialect is the SQL spoken by one database: PostgreSQL or SQLite. The
// package talks to the database only through database/sql; the dialect
// says how to write its statements. Pass the dialect matching the driver
// that opened the *sql.DB (pgx's "pgx" for PostgreSQL, a SQLite driver such
// as modernc.org/sqlite for SQLite).
type Dialect struct {
	name       string
	title      string // the database's name in prose
	versionSQL string // a query that only this database answers
	schema     string // file name under schema/
	skipLocked string // row-locking clause for claims
	numbered   func(string) string
}

var (
	// Postgres is PostgreSQL 12 or later, through a database/sql driver
	// such as github.com/jackc/pgx/v5/stdlib. Relays claim rows with
	// FOR UPDATE SKIP LOCKED, so any number of them may share a table, and
	// the schema's trigger sends NOTIFY mq_outbox when an outbox write
	// commits (see Listener).
	Postgres = &Dialect{
		name:       "postgres",
		title:      "PostgreSQL",
		versionSQL: "SELECT version()",
		schema:     "schema/postgres.sql",
		skipLocked: " FOR UPDATE SKIP LOCKED",
		numbered:   func(q string) string { return q },
	}

	// SQLite is SQLite 3.35 or later, through a database/sql driver such as
	// modernc.org/sqlite. SQLite has one writer at a time: relays take
	// turns, each claim being one short write transaction. Open the
	// database with a busy timeout (for modernc.org/sqlite:
	// "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)") so that
	// writers wait for each other instead of failing with SQLITE_BUSY.
	SQLite = &Dialect{
		name:       "sqlite",
		title:      "SQLite",
		versionSQL: "SELECT sqlite_version()",
		schema:     "schema/sqlite.sql",
		numbered:   func(q string) string { return dollar.ReplaceAllString(q, "?$1") },
	}
)

var dollar = regexp.MustCompile(`\$(\d+)`)

// String returns the dialect's name, "postgres" or "sqlite".
func (d *Dialect) String() string { return d.name }

// q rewrites a statement written with PostgreSQL's $n placeholders for d.
func (d *Dialect) q(s string) string { return d.numbered(s) }

// placeholders returns "$from, $from+1, ..., $from+n-1".
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}
