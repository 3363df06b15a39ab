// Package outbox makes a database write and the messages it implies
// consistent: the transactional outbox for producers and the inbox
// (idempotent consumer) for handlers, on database/sql with PostgreSQL or
// SQLite.
//
// The package depends on database/sql only. Open the database with the
// driver of your choice (pgx's "pgx" driver for PostgreSQL, a pure-Go
// driver such as modernc.org/sqlite for SQLite) and pass the matching
// Dialect, Postgres or SQLite. A database of the other kind is an error
// wrapping ErrWrongDialect that names the dialect to pass: Migrate, Relay
// and Inbox ask the database once (CheckDialect), and Publisher's first
// write fails. A transaction on another database of the same kind (a
// second PostgreSQL database, say) cannot be told apart: its messages go
// to that database's outbox table, or fail with "missing table" where it
// has none, and only a relay on that database sends them. Give the
// Publisher transactions of the database the Relay reads.
//
// # Schema
//
// Migrate creates the tables mq_outbox and mq_inbox (and, on PostgreSQL, a
// trigger that sends NOTIFY mq_outbox when a write commits while a relay
// with a Listener sleeps); Schema returns the same
// SQL for a migration tool.
//
// # Writing
//
// Publisher(tx, d) is an mq.Publisher that inserts messages into mq_outbox
// in the caller's transaction: they exist when the transaction commits and
// never when it rolls back. Message.Delay becomes a deliver-at time.
//
//	tx, _ := db.BeginTx(ctx, nil)
//	_, err := tx.ExecContext(ctx, "UPDATE accounts SET ...")
//	err = outbox.Publisher(tx, outbox.Postgres).Publish(ctx, "payments", &mq.Message{Key: id, Body: b})
//	err = tx.Commit()
//
// # Relaying
//
// A Relay claims rows, publishes them to any mq.Publisher and deletes each
// row only after Publish returned nil. Run as many relays as you like;
// see Relay for claims, per-key order, delays and backoff.
//
// # Delivery semantics
//
// At-least-once: a relay that dies after the broker accepted a message and
// before it deleted the row publishes it again once its lease ends, with
// the same Message.ID. Nothing committed is lost. Messages with one Key
// reach the broker in the order their rows were inserted (the order of
// the transactions that wrote them, when those serialize on a row of
// their own, as writes to one entity do). Inbox makes handlers idempotent
// by (group, message ID), so the duplicates have one effect.
//
// # Metrics
//
// With RelayOptions.MeterProvider a relay reports MetricPending and
// MetricOldestAge as OpenTelemetry gauges.
package outbox
