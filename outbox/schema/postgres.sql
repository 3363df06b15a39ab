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

-- Wake relays (LISTEN mq_outbox) when a transaction that wrote the outbox commits.
CREATE OR REPLACE FUNCTION mq_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('mq_outbox', ''); RETURN NULL; END $$;

DROP TRIGGER IF EXISTS mq_outbox_notify ON mq_outbox;

CREATE TRIGGER mq_outbox_notify AFTER INSERT ON mq_outbox FOR EACH STATEMENT EXECUTE FUNCTION mq_outbox_notify();
