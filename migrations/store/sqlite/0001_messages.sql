-- The archive of relayed messages, keyed by their deterministic hash (stored once).
CREATE TABLE IF NOT EXISTS messages (
    message_hash  BLOB    PRIMARY KEY,
    pubsub_topic  TEXT    NOT NULL,
    content_topic TEXT    NOT NULL,
    timestamp     BIGINT  NOT NULL,
    payload       BLOB    NOT NULL,
    version       BIGINT  NOT NULL,
    meta          BLOB,
    stored_at     BIGINT  NOT NULL,
    size          BIGINT  NOT NULL
);
-- Store queries name a pubsub topic and content topics, bound a time range, and page in
-- (timestamp, hash) order from a cursor: this index answers them in order, without a sort.
CREATE INDEX IF NOT EXISTS messages_topic_time
    ON messages (pubsub_topic, content_topic, timestamp, message_hash);
-- Time-only queries, and retention by age (oldest first), walk this one.
CREATE INDEX IF NOT EXISTS messages_time ON messages (timestamp, message_hash);
