-- mq outbox and inbox tables for SQLite (package github.com/seedmq/mq/outbox).
-- Times are Unix microseconds (UTC) taken from the writing process's clock.

CREATE TABLE IF NOT EXISTS mq_outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    msg_key    TEXT    NOT NULL DEFAULT '',
    body       BLOB    NOT NULL,
    headers    BLOB,
    created_us INTEGER NOT NULL,
    deliver_us INTEGER NOT NULL,
    lease_us   INTEGER NOT NULL DEFAULT 0,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX IF NOT EXISTS mq_outbox_key ON mq_outbox (msg_key, seq);

CREATE TABLE IF NOT EXISTS mq_inbox (
    grp          TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    processed_us INTEGER NOT NULL,
    PRIMARY KEY (grp, id)
);

CREATE INDEX IF NOT EXISTS mq_inbox_processed ON mq_inbox (processed_us);
