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

-- Wake relays (LISTEN mq_outbox) when a transaction that wrote the outbox commits, if no earlier
-- row was waiting then: relays claim until the table is empty (and look again shortly after), so
-- they sleep only then. The check runs at commit (a deferred constraint trigger), not at the
-- INSERT, so the rest of the writer's transaction does not widen the window in which a relay can
-- empty the table unnoticed. (Every NOTIFY serializes the commits of all notifying transactions
-- behind one lock: sent on every write, it cut the commit rate of concurrent writers by about three.)
CREATE OR REPLACE FUNCTION mq_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NOT EXISTS (SELECT 1 FROM mq_outbox o WHERE o.seq < NEW.seq) THEN PERFORM pg_notify('mq_outbox', ''); END IF; RETURN NULL; END $$;

DROP TRIGGER IF EXISTS mq_outbox_notify ON mq_outbox;

CREATE CONSTRAINT TRIGGER mq_outbox_notify AFTER INSERT ON mq_outbox DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mq_outbox_notify();
