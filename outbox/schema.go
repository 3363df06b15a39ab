package outbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
)

//go:embed schema/*.sql
var schemaFS embed.FS

// Table names the schema creates.
const (
	// OutboxTable holds messages written by Publisher until a Relay has
	// published them.
	OutboxTable = "mq_outbox"
	// InboxTable holds the (group, message ID) pairs Inbox has recorded.
	InboxTable = "mq_inbox"
)

// Schema returns the SQL that creates the outbox and inbox tables (and, on
// PostgreSQL, the trigger that notifies relays) for d. Statements are
// separated by blank lines and are safe to run again (IF NOT EXISTS). Give
// it to your migration tool, or call Migrate.
func Schema(d *Dialect) string {
	b, err := schemaFS.ReadFile(d.schema)
	if err != nil {
		panic("outbox: schema for " + d.name + " missing from the package: " + err.Error())
	}
	return string(b)
}

// Migrate creates the outbox and inbox tables in db if they do not exist.
// It runs in one transaction; on PostgreSQL concurrent calls (several
// instances starting at once) are serialized with an advisory lock.
// Migrate is idempotent. It first checks that db is of dialect d (see
// CheckDialect).
func Migrate(ctx context.Context, db *sql.DB, d *Dialect) error {
	if err := CheckDialect(ctx, db, d); err != nil {
		return fmt.Errorf("outbox: migrate: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if d == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7239107755311337)"); err != nil {
			return fmt.Errorf("outbox: migrate: %w", err)
		}
	}
	for _, stmt := range statements(Schema(d)) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("outbox: migrate (%s): %w", firstLine(stmt), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: migrate: %w", err)
	}
	return nil
}

// statements splits a schema file at blank lines, dropping comments.
func statements(schema string) []string {
	var out []string
	for _, part := range strings.Split(schema, "\n\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.TrimSuffix(strings.Join(lines, "\n"), ";"))
		}
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// explain turns a database error about the outbox or inbox into one that
// names the fix, and leaves others as they are.
func explain(op string, d *Dialect, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("outbox: %s: the transaction was already committed or rolled back; write to the outbox before tx.Commit: %w", op, err)
	}
	if errors.Is(err, ErrWrongDialect) {
		return err
	}
	if otherDatabase(d, err) {
		return fmt.Errorf("outbox: %s: %w", op, wrongDialect(d, err))
	}
	msg := err.Error()
	for _, t := range []string{OutboxTable, InboxTable} {
		if strings.Contains(msg, t) && (strings.Contains(msg, "does not exist") || strings.Contains(msg, "no such table")) {
			return fmt.Errorf("outbox: %s: table %s does not exist in this database: create it with outbox.Migrate(ctx, db, outbox.%s) or apply outbox.Schema(outbox.%[3]s) with your migration tool: %w",
				op, t, dialectVar(d), err)
		}
	}
	return fmt.Errorf("outbox: %s: %w", op, err)
}

func dialectVar(d *Dialect) string {
	if d == SQLite {
		return "SQLite"
	}
	return "Postgres"
}
