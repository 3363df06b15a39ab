package outbox

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seedmq/mq"
)

// Execer is what Publisher writes through: a *sql.Tx (the usual case), or
// a *sql.Conn or *sql.DB when the caller manages the transaction itself.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// TxPublisher is an mq.Publisher that writes messages into the outbox table
// through the caller's transaction. See Publisher.
type TxPublisher struct {
	tx     Execer
	d      *Dialect
	now    func() time.Time
	closed atomic.Bool
}

// Publisher returns an mq.Publisher whose Publish inserts the messages into
// the outbox table (OutboxTable) through tx, typically the *sql.Tx that
// also holds the service's own writes. The messages become visible to a
// Relay when tx commits, and are never sent when it rolls back: the
// database write and its messages agree. d is the dialect of tx's database.
//
// Publish validates every message first, fills empty IDs with mq.NewID and
// records Message.Delay as a deliver-at time, so a relay publishes the
// message no earlier than Delay after this call, also to brokers without
// DelayedDelivery. It returns nil once the rows are written in tx; that
// they reach the broker is then the relay's work. A closed transaction, a
// missing table or a dialect that does not match the database are errors
// that name the fix.
//
// The publisher is as safe for concurrent use as tx is (a *sql.Tx is). It
// is cheap: make one per transaction. Close only marks it closed; it does
// not touch tx.
func Publisher(tx Execer, d *Dialect) *TxPublisher {
	if tx == nil || d == nil {
		panic("outbox: Publisher needs a transaction and a dialect")
	}
	return &TxPublisher{tx: tx, d: d, now: time.Now}
}

var _ mq.Publisher = (*TxPublisher)(nil)

// insertSQL writes one message. On PostgreSQL it says OVERRIDING USER
// VALUE, which changes nothing there (no identity value is given) and is
// a syntax error on SQLite: a SQLite transaction passed with
// outbox.Postgres fails on its first write instead of working by accident
// while the relay, given the same dialect, cannot read the rows.
func insertSQL(d *Dialect) string {
	clause := ""
	if d == Postgres {
		clause = " OVERRIDING USER VALUE"
	}
	return d.q(`INSERT INTO mq_outbox (id, topic, msg_key, body, headers, created_us, deliver_us)` + clause + ` VALUES ($1, $2, $3, $4, $5, $6, $7)`)
}

var (
	insertPostgres = insertSQL(Postgres)
	insertSQLite   = insertSQL(SQLite)
)

// Publish writes msgs to the outbox for topic in the publisher's
// transaction. See Publisher.
func (p *TxPublisher) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if p.closed.Load() {
		return mq.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if topic == "" {
		return fmt.Errorf("outbox: %w: empty topic name", mq.ErrInvalidTopic)
	}
	if len(msgs) == 0 {
		return fmt.Errorf("outbox: %w: no messages", mq.ErrInvalidMessage)
	}
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("outbox: %w: message %d is nil", mq.ErrInvalidMessage, i)
		}
		if m.Delay < 0 {
			return fmt.Errorf("outbox: %w: message %d has a negative Delay", mq.ErrInvalidMessage, i)
		}
		for k := range m.Header {
			if k == "" || strings.HasPrefix(k, mq.ReservedHeaderPrefix) {
				return fmt.Errorf("outbox: %w: message %d: header key %q is empty or reserved", mq.ErrInvalidMessage, i, k)
			}
		}
	}
	now := p.now()
	q := insertSQLite
	if p.d == Postgres {
		q = insertPostgres
	}
	for _, m := range msgs {
		if m.ID == "" {
			m.ID = mq.NewID()
		}
		body := m.Body
		if body == nil {
			body = []byte{}
		}
		_, err := p.tx.ExecContext(ctx, q, m.ID, topic, m.Key, body, encodeHeader(m.Header),
			now.UnixMicro(), now.Add(m.Delay).UnixMicro())
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return err
			}
			return explain("publish", p.d, err)
		}
	}
	return nil
}

// Close marks the publisher closed: later Publish calls return
// mq.ErrClosed. It does not commit or roll back the transaction. It is
// idempotent.
func (p *TxPublisher) Close(context.Context) error {
	p.closed.Store(true)
	return nil
}

// encodeHeader stores a header as (uvarint length, bytes) pairs, so keys
// and values round-trip byte for byte. An empty header is NULL.
func encodeHeader(h map[string]string) []byte {
	if len(h) == 0 {
		return nil
	}
	var b []byte
	for k, v := range h {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

func decodeHeader(b []byte) (map[string]string, error) {
	h := map[string]string{}
	next := func() (string, error) {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return "", errors.New("outbox: corrupt headers column")
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, nil
	}
	for len(b) > 0 {
		k, err := next()
		if err != nil {
			return nil, err
		}
		v, err := next()
		if err != nil {
			return nil, err
		}
		h[k] = v
	}
	return h, nil
}
