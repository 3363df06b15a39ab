package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel/metric"

	"github.com/seedmq/mq"
)

// Defaults for RelayOptions.
const (
	DefaultBatchSize    = 100
	DefaultPollInterval = time.Second
	DefaultLease        = 30 * time.Second
	DefaultMaxBackoff   = 30 * time.Second
	minBackoff          = 50 * time.Millisecond
)

// RelayOptions configures a Relay. The zero value of each field but
// Publisher is a sane default.
type RelayOptions struct {
	// Publisher receives the messages. Required. Any mq.Publisher: a
	// broker from mq.Open, or a publisher wrapped in middleware.
	Publisher mq.Publisher

	// BatchSize is the most rows one claim takes. Default DefaultBatchSize.
	BatchSize int

	// PollInterval is how long the relay sleeps when the table had nothing
	// to send before it looks again. With a Listener it is the fallback
	// for lost notifications. A relay that sent rows claims again at
	// once; when the table is empty it looks again every 10ms for 200ms
	// after the last rows it sent, and only then sleeps PollInterval.
	// Default DefaultPollInterval.
	PollInterval time.Duration

	// Lease is how long a claimed row is reserved for the relay that
	// claimed it. A relay that dies (crash, SIGKILL, lost network) leaves
	// its rows leased; another relay takes them once the lease has run
	// out and publishes them again (at-least-once). Publish calls are
	// bounded by the lease, so a slow broker does not make two relays
	// publish one row at once. Default DefaultLease.
	Lease time.Duration

	// MaxBackoff caps the waits after failures: the relay's own wait when
	// the broker (or database) fails every attempt, and the time until a
	// row whose Publish failed is tried again. Waits grow exponentially
	// from 50ms, with jitter. Default DefaultMaxBackoff.
	MaxBackoff time.Duration

	// Listener, when set, wakes the relay as soon as an outbox write
	// commits instead of at the next poll. See package
	// github.com/seedmq/mq/outbox/pgxlisten for PostgreSQL's LISTEN.
	// On PostgreSQL, a relay with a Listener holds an advisory lock on one
	// connection of its own while it sleeps, and the schema's trigger
	// sends NOTIFY only when such a lock is held: writers do not pay for
	// NOTIFY while every relay is busy, nor when no relay listens.
	Listener Listener

	// MeterProvider, when set, receives the lag gauges (MetricPending,
	// MetricOldestAge). Default: no metrics.
	MeterProvider metric.MeterProvider

	// Logger receives one line per failed claim or publish. Default
	// slog.Default().
	Logger *slog.Logger

	// now is the clock; tests replace it.
	now func() time.Time
}

// A Listener wakes a relay when rows may be waiting. Listen blocks until
// ctx ends or the listening connection fails, calling wake (which does not
// block) for every notification. The relay calls Listen again after a
// failure, with backoff, and keeps polling meanwhile.
type Listener interface {
	Listen(ctx context.Context, wake func()) error
}

// Relay publishes the rows of the outbox table to a broker and deletes
// each row only after the broker accepted it (Publish returned nil). Any
// number of relays, in one process or many, may run on one table:
//
//   - A relay claims rows by leasing them (PostgreSQL: SELECT ... FOR
//     UPDATE SKIP LOCKED, so claims never wait for each other; SQLite: one
//     short write transaction at a time).
//   - Messages with the same Key are published in the order their rows
//     were inserted: only the earliest row of a key can be claimed alone,
//     the rows after it are claimed with it by the same relay, and a key's
//     messages are never in flight together. A row whose Publish failed
//     blocks the rows of its key until it is sent; other keys go on.
//     Messages without a Key have no order.
//   - A row whose deliver-at time (Message.Delay) is in the future is
//     neither claimed nor holds back the later rows of its key.
//   - At-least-once: a relay that dies between the broker's acceptance and
//     the delete leaves the row leased; it is published again when the
//     lease ends. On PostgreSQL the relay's own transactions do not wait
//     for the WAL flush, so a database crash may undo recent deletes and
//     publish those rows again too. Consumers deduplicate by message ID
//     (see Inbox).
type Relay struct {
	db  *sql.DB
	d   *Dialect
	o   RelayOptions
	log *slog.Logger

	wake    chan struct{}
	checked atomic.Bool // CheckDialect passed
}

// NewRelay returns a relay that moves the outbox rows of db to
// o.Publisher. d is db's dialect. It panics if db, d or o.Publisher is nil.
// Start it with Run.
func NewRelay(db *sql.DB, d *Dialect, o RelayOptions) *Relay {
	if db == nil || d == nil || o.Publisher == nil {
		panic("outbox: NewRelay needs a database, a dialect and RelayOptions.Publisher")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	return &Relay{db: db, d: d, o: o, log: o.Logger.With("component", "outbox.relay"), wake: make(chan struct{}, 1)}
}

// Run relays rows until ctx ends, then returns ctx.Err(). Failures to
// reach the database or the broker are logged and retried with backoff;
// they never end Run. A database of another dialect than the relay's
// does: Run returns an error wrapping ErrWrongDialect at once. Rows
// claimed when ctx ends are released (or, if the relay cannot reach the
// database any more, their lease runs out). Run may be called once per
// Relay; run several Relays for more throughput or availability.
func (r *Relay) Run(ctx context.Context) error {
	if r.o.MeterProvider != nil {
		reg, err := registerMetrics(r.o.MeterProvider, r.db, r.d)
		if err != nil {
			r.log.Warn("outbox: lag metrics not registered", "err", err)
		} else {
			defer reg.Unregister() //nolint:errcheck // nothing to do about it
		}
	}
	if r.o.Listener != nil {
		go r.listen(ctx)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = minBackoff
	bo.MaxInterval = r.o.MaxBackoff
	sl := &sleepLock{r: r}
	defer sl.close()
	var lastSent time.Time
	for {
		n, sent, err := r.RunOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrWrongDialect) {
			return err
		}
		var wait time.Duration
		held := false
		switch {
		case err != nil || (n > 0 && sent == 0):
			// Nothing moved: the database or the broker is down.
			wait = bo.NextBackOff()
			if err != nil {
				r.log.Warn("outbox: relay round failed", "err", err, "retry_in", wait)
			}
		case sent > 0:
			// More may be waiting: claim until a claim comes back
			// empty. PostgreSQL's trigger notifies only while a relay
			// sleeps, so a relay must not sleep while rows remain.
			bo.Reset()
			lastSent = time.Now()
			continue
		case time.Since(lastSent) < quietFor && r.o.PollInterval > quietPoll:
			// Just busy: look again soon, without asking the writers
			// to notify (see sleepLock).
			bo.Reset()
			wait = quietPoll
		default:
			bo.Reset()
			wait = r.o.PollInterval
			if held = sl.lock(ctx); held {
				// Writes that were committing when the relay took the
				// lock did not notify: look once more before sleeping.
				if n, _, err := r.RunOnce(ctx); err == nil && n > 0 {
					sl.unlock(ctx)
					lastSent = time.Now()
					continue
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-r.wake:
			t.Stop()
		case <-t.C:
		}
		if held {
			sl.unlock(ctx)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (r *Relay) listen(ctx context.Context) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = minBackoff
	bo.MaxInterval = r.o.MaxBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := r.o.Listener.Listen(ctx, r.notify)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > r.o.MaxBackoff {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		r.log.Warn("outbox: listener failed; polling meanwhile", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		r.notify() // notifications may have been missed
	}
}

// After a claim that sent rows, a relay whose next claims find nothing
// looks again every quietPoll until quietFor has passed since, before it
// sleeps PollInterval. Under a steady trickle of writes it so stays awake,
// and writers need not notify it: NOTIFY serializes their commits.
const (
	quietPoll = 10 * time.Millisecond
	quietFor  = 200 * time.Millisecond
)

// notify wakes Run without blocking.
func (r *Relay) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// row is one claimed outbox row.
type row struct {
	seq      int64
	msg      *mq.Message
	topic    string
	attempts int
}

// RunOnce claims one batch, publishes it and settles it: it returns how
// many rows it claimed and how many of them the broker accepted (and were
// deleted). Run calls it in a loop; tests and tools may call it directly.
// Until one call has checked that the database is of the relay's dialect
// (see CheckDialect), each call checks first.
func (r *Relay) RunOnce(ctx context.Context) (claimed, sent int, err error) {
	if !r.checked.Load() {
		if err := CheckDialect(ctx, r.db, r.d); err != nil {
			return 0, 0, fmt.Errorf("outbox: relay: %w", err)
		}
		r.checked.Store(true)
	}
	now := r.o.now()
	leaseEnd := now.Add(r.o.Lease)
	rows, err := r.claim(ctx, now, leaseEnd)
	if err != nil || len(rows) == 0 {
		return 0, 0, err
	}
	// Publish no later than the lease allows, keeping a tenth of it to
	// settle the rows.
	pctx, cancel := context.WithDeadline(ctx, leaseEnd.Add(-r.o.Lease/10))
	done, failed, untried := r.publish(pctx, rows)
	cancel()
	// Settle even when ctx has ended: rows the broker accepted should not
	// be sent again, if the database still answers.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.settle(sctx, done, failed, untried); err != nil {
		return len(rows), 0, err
	}
	return len(rows), len(done), nil
}

const claimHeadsSQL = `UPDATE mq_outbox SET lease_us = $2, attempts = attempts + 1
WHERE seq IN (
  SELECT o.seq FROM mq_outbox o
  WHERE o.deliver_us <= $1 AND o.lease_us <= $1
    AND (o.msg_key = '' OR NOT EXISTS (
      SELECT 1 FROM mq_outbox e WHERE e.msg_key = o.msg_key AND e.seq < o.seq AND e.deliver_us <= $1))
  ORDER BY o.seq LIMIT $3%s)
RETURNING seq, id, topic, msg_key, body, headers, attempts`

const claimFollowersSQL = `UPDATE mq_outbox SET lease_us = $2, attempts = attempts + 1
WHERE seq IN (
  SELECT seq FROM mq_outbox
  WHERE msg_key IN (%s) AND deliver_us <= $1 AND lease_us <= $1
  ORDER BY seq LIMIT $3%s)
RETURNING seq, id, topic, msg_key, body, headers, attempts`

// claim leases up to BatchSize rows in one transaction: the earliest due
// row of each key (and keyless rows) no other relay holds, then the due
// rows after them of the same keys.
func (r *Relay) claim(ctx context.Context, now, leaseEnd time.Time) ([]row, error) {
	tx, err := r.begin(ctx)
	if err != nil {
		return nil, explain("claim", r.d, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	heads, err := scanRows(tx.QueryContext(ctx, r.d.q(fmt.Sprintf(claimHeadsSQL, r.d.skipLocked)),
		now.UnixMicro(), leaseEnd.UnixMicro(), r.o.BatchSize))
	if err != nil {
		return nil, explain("claim", r.d, err)
	}
	all := heads
	if room := r.o.BatchSize - len(heads); room > 0 {
		keys := map[string]bool{}
		args := []any{now.UnixMicro(), leaseEnd.UnixMicro(), room}
		for _, h := range heads {
			if h.msg.Key != "" && !keys[h.msg.Key] {
				keys[h.msg.Key] = true
				args = append(args, h.msg.Key)
			}
		}
		if len(keys) > 0 {
			lock := ""
			if r.d.skipLocked != "" {
				lock = " FOR UPDATE" // followers are ours alone: wait, never skip one
			}
			q := fmt.Sprintf(claimFollowersSQL, placeholders(4, len(keys)), lock)
			more, err := scanRows(tx.QueryContext(ctx, r.d.q(q), args...))
			if err != nil {
				return nil, explain("claim", r.d, err)
			}
			all = append(all, more...)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, explain("claim", r.d, err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	return all, nil
}

func scanRows(rs *sql.Rows, err error) ([]row, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var (
			rw      row
			m       mq.Message
			headers []byte
		)
		if err := rs.Scan(&rw.seq, &m.ID, &rw.topic, &m.Key, &m.Body, &headers, &rw.attempts); err != nil {
			return nil, err
		}
		h, err := decodeHeader(headers)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", rw.seq, err)
		}
		m.Header = h
		if m.Body == nil {
			m.Body = []byte{}
		}
		rw.msg = &m
		out = append(out, rw)
	}
	return out, rs.Err()
}

type failure struct {
	row row
	err error
}

// publish sends rows in rounds: round i holds the i-th claimed row of each
// key (keyless rows all go in the first), so a key never has two messages
// in flight. A failure stops the rest of its key for this batch. Each
// round publishes one batch per topic.
func (r *Relay) publish(ctx context.Context, rows []row) (done []int64, failed []failure, untried []int64) {
	var rounds [][]row
	depth := map[string]int{}
	for _, rw := range rows {
		i := 0
		if k := rw.msg.Key; k != "" {
			i = depth[k]
			depth[k]++
		}
		if i == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[i] = append(rounds[i], rw)
	}
	blocked := map[string]bool{}
	for _, round := range rounds {
		var topics []string
		byTopic := map[string][]row{}
		for _, rw := range round {
			if rw.msg.Key != "" && blocked[rw.msg.Key] || ctx.Err() != nil {
				untried = append(untried, rw.seq)
				continue
			}
			if _, ok := byTopic[rw.topic]; !ok {
				topics = append(topics, rw.topic)
			}
			byTopic[rw.topic] = append(byTopic[rw.topic], rw)
		}
		for _, topic := range topics {
			batch := byTopic[topic]
			msgs := make([]*mq.Message, len(batch))
			for i, rw := range batch {
				msgs[i] = rw.msg
			}
			bad, err := r.publishBatch(ctx, topic, msgs)
			for i, rw := range batch {
				if e, ok := bad[i]; ok {
					failed = append(failed, failure{rw, e})
					if rw.msg.Key != "" {
						blocked[rw.msg.Key] = true
					}
				} else {
					done = append(done, rw.seq)
				}
			}
			if len(bad) > 0 && ctx.Err() == nil {
				r.log.Warn("outbox: publish failed; the rows wait", "topic", topic, "messages", len(batch), "failed", len(bad), "err", err)
			}
		}
	}
	return done, failed, untried
}

// publishBatch publishes msgs in one call and returns the failures by
// index. When the whole call fails with an error that retrying will not
// fix (an invalid or oversized message fails validation of the batch), it
// publishes the messages one by one, so that one bad message holds back
// only its own key.
func (r *Relay) publishBatch(ctx context.Context, topic string, msgs []*mq.Message) (map[int]error, error) {
	err := r.o.Publisher.Publish(ctx, topic, msgs...)
	bad := map[int]error{}
	var pe *mq.PublishError
	switch {
	case err == nil:
	case errors.As(err, &pe):
		for _, f := range pe.Failures {
			bad[f.Index] = f.Err
		}
	case len(msgs) > 1 && ctx.Err() == nil && !mq.IsRetryable(err):
		for i, m := range msgs {
			if e := r.o.Publisher.Publish(ctx, topic, m); e != nil {
				bad[i] = e
			}
		}
	default:
		for i := range msgs {
			bad[i] = err
		}
	}
	return bad, err
}

// settle deletes the rows the broker accepted, schedules the retry of the
// failed ones and releases the rows not tried, in one transaction.
func (r *Relay) settle(ctx context.Context, done []int64, failed []failure, untried []int64) error {
	tx, err := r.begin(ctx)
	if err != nil {
		return explain("settle", r.d, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for len(done) > 0 {
		n := min(len(done), 500)
		args := make([]any, n)
		for i, s := range done[:n] {
			args[i] = s
		}
		if _, err := tx.ExecContext(ctx, r.d.q("DELETE FROM mq_outbox WHERE seq IN ("+placeholders(1, n)+")"), args...); err != nil {
			return explain("settle", r.d, err)
		}
		done = done[n:]
	}
	now := r.o.now()
	for _, f := range failed {
		next := now.Add(r.retryDelay(f.row.attempts))
		msg := f.err.Error()
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		if _, err := tx.ExecContext(ctx, r.d.q("UPDATE mq_outbox SET lease_us = $1, last_error = $2 WHERE seq = $3"),
			next.UnixMicro(), msg, f.row.seq); err != nil {
			return explain("settle", r.d, err)
		}
	}
	for len(untried) > 0 {
		n := min(len(untried), 500)
		args := make([]any, n)
		for i, s := range untried[:n] {
			args[i] = s
		}
		if _, err := tx.ExecContext(ctx, r.d.q("UPDATE mq_outbox SET lease_us = 0, attempts = attempts - 1 WHERE seq IN ("+placeholders(1, n)+")"), args...); err != nil {
			return explain("settle", r.d, err)
		}
		untried = untried[n:]
	}
	if err := tx.Commit(); err != nil {
		return explain("settle", r.d, err)
	}
	return nil
}

// begin starts one of the relay's own transactions (a claim or a
// settlement). On PostgreSQL they commit without waiting for the WAL
// flush (synchronous_commit off): a database crash can undo the last
// leases and deletes, and then rows are published again, a duplicate the
// relay allows anyway, never a loss (the writers' commits are as durable
// as the writers made them). It saves a disk flush per claim and per
// settlement.
func (r *Relay) begin(ctx context.Context) (*sql.Tx, error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil || r.d != Postgres {
		return tx, err
	}
	if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		tx.Rollback() //nolint:errcheck // the SET's error is the one to report
		return nil, err
	}
	return tx, nil
}

// retryDelay is the wait before a row that failed on its attempts-th claim
// is tried again: exponential from minBackoff, capped at MaxBackoff, with
// up to 20% jitter.
func (r *Relay) retryDelay(attempts int) time.Duration {
	d := minBackoff
	for i := 1; i < attempts && d < r.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.o.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
