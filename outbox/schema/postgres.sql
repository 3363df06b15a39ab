-- mq outbox and inbox tables for PostgreSQL (package github.com/seedmq/mq/outbox).
-- Times are Unix microseconds (UTC) taken from the writing process's clock.

CREATE TABLE IF NOT EXISTS mq_outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    msg_key    TEXT    NOT NULL DEFAULT '',
    body       BYTEA   NOT NULL,
    headers    BYTEA,
    created_us BIGINT  NOT NULL,
    deliver_us BIGINT  NOT NULL,
    lease_us   BIGINT  NOT NULL DEFAULT 0,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX IF NOT EXISTS mq_outbox_key ON mq_outbox (msg_key, seq);

CREATE TABLE IF NOT EXISTS mq_inbox (
    grp          TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    processed_us BIGINT NOT NULL,
    PRIMARY KEY (grp, id)
);

CREATE INDEX IF NOT EXISTS mq_inbox_processed ON mq_inbox (processed_us);

-- Wake relays (LISTEN mq_outbox) when a transaction that wrote the outbox commits while a relay
-- sleeps: a sleeping relay holds the table's advisory lock (1836150626, OID of mq_outbox), and the
-- check runs at commit (a deferred constraint trigger). Writers that get the lock in shared mode
-- send nothing, so that NOTIFY, which serializes the commits of notifying transactions, costs
-- only when a relay waits for it. See sleeplock.go in package outbox.
CREATE OR REPLACE FUNCTION mq_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NOT pg_try_advisory_xact_lock_shared(1836150626, (TG_RELID::bigint % 2147483647)::int4) THEN PERFORM pg_notify('mq_outbox', ''); END IF; RETURN NULL; END $$;

DROP TRIGGER IF EXISTS mq_outbox_notify ON mq_outbox;

CREATE CONSTRAINT TRIGGER mq_outbox_notify AFTER INSERT ON mq_outbox DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mq_outbox_notify();
