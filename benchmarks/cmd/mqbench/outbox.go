package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/outbox"
	"github.com/seedmq/mq/outbox/pgxlisten"
)

// The outbox contenders publish through a transactional outbox on the
// PostgreSQL of MQ_TEST_POSTGRES_DSN: every Publish call is one database
// transaction that writes the messages into an outbox table, and a
// forwarding process publishes the committed rows to the same mq broker
// the "mq" contender uses, whose subscriber consumes them as there. So
// "mq+outbox" ÷ "mq" is what the outbox costs against publishing
// directly, and "mq+outbox" ÷ "watermill-sql-forwarder" compares the two
// forwarders on the same database, broker and consumer.
//
// Each run gets a PostgreSQL schema of its own, dropped by Delete.

// outboxWatermillPoll is the watermill-sql subscriber's poll interval in
// the forwarder contender: its default is 1s, which would make the
// forwarder wait for most of a second after every drained batch.
const outboxWatermillPoll = 10 * time.Millisecond

// outboxContenders returns the outbox contenders over the brokers open
// returns, deleting each run's topic with del (nil for in-process
// brokers).
func outboxContenders(open openFunc, del deleteFunc) []contender {
	dsn := os.Getenv("MQ_TEST_POSTGRES_DSN")
	na := ""
	if dsn == "" {
		na = "MQ_TEST_POSTGRES_DSN is not set (run: scripts/brokers up postgres; eval \"$(scripts/brokers env)\")"
	}
	relayNote := "mq as above behind package outbox on PostgreSQL: each Publish call one transaction writing the messages with outbox.Publisher(tx, outbox.Postgres); one outbox.Relay (defaults: BatchSize 100, woken by pgxlisten's LISTEN/NOTIFY) publishes them to the broker"
	wmNote := fmt.Sprintf("Watermill's forwarder (watermill-sql v4, watermill components/forwarder) on the same PostgreSQL: each Publish call one transaction writing through forwarder.NewPublisher(sql.NewPublisher(tx, DefaultPostgreSQLSchema with BYTEA payloads)); forwarder.NewForwarder over a watermill-sql Subscriber (DefaultPostgreSQLOffsetsAdapter, batch 100, PollInterval %v instead of the default 1s) publishes them to the same mq broker as mq+outbox", outboxWatermillPoll)
	const drainNote = "; drain: the timed messages are written first and held from the broker, and the time runs from their release until the last is consumed (the forwarder's throughput alone)"
	start := func(wm, drain bool) func(ctx context.Context, c cell, recv func(int64)) (run, error) {
		return func(ctx context.Context, c cell, recv func(int64)) (run, error) {
			r, err := startOutbox(ctx, dsn, open, del, c, recv, wm)
			if err != nil || !drain {
				return r, err
			}
			return drainRun{r.(*outboxRun)}, nil
		}
	}
	return []contender{
		{Name: "mq+outbox", NA: na, Note: relayNote, Start: start(false, false)},
		{Name: "mq+outbox-drain", NA: na, Note: relayNote + drainNote, Start: start(false, true)},
		{Name: "watermill-sql-forwarder", NA: na, Note: wmNote, Start: start(true, false)},
		{Name: "watermill-sql-forwarder-drain", NA: na, Note: wmNote + drainNote, Start: start(true, true)},
	}
}

// drainRun is an outbox run whose forwarder can be held (see holder).
type drainRun struct{ *outboxRun }

func (r drainRun) Hold()    { r.gate.hold() }
func (r drainRun) Release() { r.gate.release() }

// gate holds the forwarders' publishes while it is shut.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gated is the relay's publisher: the broker, behind the gate.
type gated struct {
	mq.Publisher
	g *gate
}

func (p gated) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := p.g.wait(ctx); err != nil {
		return err
	}
	return p.Publisher.Publish(ctx, topic, msgs...)
}

// outboxRun is one outbox contender on a fresh topic and schema.
type outboxRun struct {
	mq       *mqRun
	db       *sql.DB
	dsn      string
	schema   string
	d        *outbox.Dialect
	wm       bool   // watermill's forwarder instead of outbox.Relay
	gate     *gate  // between the forwarder and the broker
	wmTopic  string // the forwarder's table topic
	stop     context.CancelFunc
	fwdDone  chan error
	fwdClose func() error
}

func startOutbox(ctx context.Context, dsn string, open openFunc, del deleteFunc, c cell, recv func(int64), wm bool) (run, error) {
	b, err := open(ctx, c)
	if err != nil {
		return nil, err
	}
	topic := freshTopic("ob")
	if err := mq.Provision(ctx, b, topic, benchGroup); err != nil {
		_ = b.Close(context.Background())
		return nil, fmt.Errorf("provision: %w", err)
	}
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	r := &outboxRun{dsn: dsn, schema: "mqb_" + hex.EncodeToString(rnd), d: outbox.Postgres, wm: wm, wmTopic: "forward", gate: newGate()}
	fail := func(err error) (run, error) {
		_ = b.Close(context.Background())
		if r.db != nil {
			_ = r.db.Close()
		}
		_ = r.dropSchema(context.Background())
		return nil, err
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return fail(err)
	}
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+r.schema)
	admin.Close()
	if err != nil {
		return fail(fmt.Errorf("postgres: %w", err))
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if r.db, err = sql.Open("pgx", dsn+sep+"search_path="+r.schema); err != nil {
		return fail(err)
	}
	r.db.SetMaxOpenConns(c.Conc + 8)
	r.db.SetMaxIdleConns(c.Conc + 8)

	fctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	r.fwdDone = make(chan error, 1)
	if wm {
		sub, err := wmsql.NewSubscriber(wmsql.BeginnerFromStdSQL(r.db), wmsql.SubscriberConfig{
			SchemaAdapter:    wmSchema,
			OffsetsAdapter:   wmsql.DefaultPostgreSQLOffsetsAdapter{},
			PollInterval:     outboxWatermillPoll,
			InitializeSchema: true,
		}, watermill.NopLogger{})
		if err != nil {
			stop()
			return fail(err)
		}
		if err := sub.SubscribeInitialize(r.wmTopic); err != nil {
			stop()
			return fail(fmt.Errorf("watermill-sql schema: %w", err))
		}
		fwd, err := forwarder.NewForwarder(sub, wmOut{b: b, g: r.gate}, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: r.wmTopic, CloseTimeout: 10 * time.Second})
		if err != nil {
			stop()
			return fail(err)
		}
		r.fwdClose = func() error { return errors.Join(fwd.Close(), sub.Close()) }
		go func() { r.fwdDone <- fwd.Run(fctx) }()
	} else {
		if err := outbox.Migrate(ctx, r.db, outbox.Postgres); err != nil {
			stop()
			return fail(err)
		}
		relay := outbox.NewRelay(r.db, outbox.Postgres, outbox.RelayOptions{Publisher: gated{b, r.gate}, Listener: pgxlisten.New(r.db), Logger: quiet})
		go func() { r.fwdDone <- relay.Run(fctx) }()
	}

	sctx, cancel := context.WithCancel(context.Background())
	r.mq = &mqRun{b: b, topic: topic, del: del, cancel: cancel, done: make(chan error, 1)}
	h := func(_ context.Context, m *mq.Message) error {
		recv(parseSent(m.Header[sentHeader]))
		return nil
	}
	go func() {
		r.mq.done <- b.Subscribe(sctx, topic, h, mq.Group(benchGroup), mq.Concurrency(c.Conc))
	}()
	return r, nil
}

// wmSchema stores payloads as BYTEA: the default, JSON, refuses the
// benchmark's bodies.
var wmSchema = wmsql.DefaultPostgreSQLSchema{GeneratePayloadType: func(string) string { return "BYTEA" }}

func (r *outboxRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if r.wm {
		err = r.publishWatermill(tx, bodies, sent)
	} else {
		msgs := make([]*mq.Message, len(bodies))
		for i, body := range bodies {
			m := &mq.Message{Body: body}
			if sent != 0 {
				m.Header = map[string]string{sentHeader: formatSent(sent)}
			}
			msgs[i] = m
		}
		err = outbox.Publisher(tx, r.d).Publish(ctx, r.mq.topic, msgs...)
	}
	if err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func (r *outboxRun) publishWatermill(tx *sql.Tx, bodies [][]byte, sent int64) error {
	p, err := wmsql.NewPublisher(wmsql.TxFromStdSQL(tx), wmsql.PublisherConfig{SchemaAdapter: wmSchema}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	fp := forwarder.NewPublisher(p, forwarder.PublisherConfig{ForwarderTopic: r.wmTopic})
	msgs := make([]*message.Message, len(bodies))
	for i, body := range bodies {
		m := message.NewMessage(watermill.NewUUID(), body)
		if sent != 0 {
			m.Metadata.Set(sentHeader, formatSent(sent))
		}
		msgs[i] = m
	}
	return fp.Publish(r.mq.topic, msgs...)
}

// Close stops the forwarder, then the consumer and the broker.
func (r *outboxRun) Close(ctx context.Context) error {
	r.gate.release()
	r.stop()
	var err error
	if r.fwdClose != nil {
		err = r.fwdClose()
	}
	select {
	case ferr := <-r.fwdDone:
		if ferr != nil && !errors.Is(ferr, context.Canceled) && err == nil {
			err = fmt.Errorf("forwarder: %w", ferr)
		}
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("forwarder did not stop: %w", ctx.Err()))
	}
	err = errors.Join(err, r.mq.Close(ctx), r.db.Close())
	return err
}

// Delete drops the run's schema and what the run created on the broker.
func (r *outboxRun) Delete(ctx context.Context) error {
	return errors.Join(r.dropSchema(ctx), r.mq.Delete(ctx))
}

func (r *outboxRun) dropSchema(ctx context.Context) error {
	admin, err := sql.Open("pgx", r.dsn)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+r.schema+" CASCADE")
	return err
}

// wmOut is the forwarder's output: a Watermill publisher over the mq
// broker, so that both forwarders publish through the same client.
type wmOut struct {
	b mq.Broker
	g *gate
}

func (o wmOut) Publish(topic string, msgs ...*message.Message) error {
	if err := o.g.wait(context.Background()); err != nil {
		return err
	}
	out := make([]*mq.Message, len(msgs))
	for i, m := range msgs {
		var h map[string]string
		if v := m.Metadata.Get(sentHeader); v != "" {
			h = map[string]string{sentHeader: v}
		}
		out[i] = &mq.Message{ID: m.UUID, Body: m.Payload, Header: h}
	}
	return o.b.Publish(context.Background(), topic, out...)
}

func (wmOut) Close() error { return nil }
