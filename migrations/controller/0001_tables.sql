-- The controller's tables, the same on SQLite and Postgres. Times are Unix milliseconds (BIGINT:
-- sqlx's Any driver has no timestamp type shared by both backends); lists and report bodies
-- are JSON text. The audit log, whose syntax differs, is 0002 in each dialect's folder.

-- One-time enrolment tokens. Only the SHA-256 of a token is kept, so reading the database
-- does not let anyone enrol a node.
CREATE TABLE enrolment_tokens (
    token_hash  TEXT    PRIMARY KEY,
    label       TEXT    NOT NULL,
    roles       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT,
    node_id     TEXT
);

-- Enrolled nodes, keyed by ENR node id (keccak256 of the public key). The report columns hold
-- the newest report by measurement time; the counter is the replay guard.
CREATE TABLE nodes (
    node_id          TEXT    PRIMARY KEY,
    public_key       TEXT    NOT NULL,
    label            TEXT    NOT NULL,
    roles            TEXT    NOT NULL,
    shards           TEXT    NOT NULL,
    cluster_id       BIGINT,
    enr              TEXT    NOT NULL,
    enr_seq          BIGINT  NOT NULL,
    enrolled_at      BIGINT  NOT NULL,
    last_counter     BIGINT  NOT NULL,
    last_sent_at     BIGINT,
    last_measured_at BIGINT,
    last_report      TEXT,
    health           TEXT    NOT NULL,
    health_reason    TEXT    NOT NULL,
    passing_since    BIGINT,
    reachable        BIGINT,
    reachable_at     BIGINT
);

-- Every ENR a node has announced, by sequence number.
CREATE TABLE enr_history (
    node_id     TEXT    NOT NULL,
    enr_seq     BIGINT  NOT NULL,
    enr         TEXT    NOT NULL,
    first_seen  BIGINT  NOT NULL,
    PRIMARY KEY (node_id, enr_seq)
);

-- Accepted reports, newest kept per node up to the configured count.
CREATE TABLE reports (
    node_id      TEXT    NOT NULL,
    counter      BIGINT  NOT NULL,
    sent_at      BIGINT  NOT NULL,
    measured_at  BIGINT  NOT NULL,
    received_at  BIGINT  NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (node_id, counter)
);

-- Tree definitions: where a tree is published, who is listed, who signs.
CREATE TABLE trees (
    name        TEXT    PRIMARY KEY,
    domain      TEXT    NOT NULL UNIQUE,
    policy      TEXT    NOT NULL,
    signer      TEXT    NOT NULL,
    public_key  TEXT,
    last_error  TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- Every built version of every tree. state: pending (waiting for an offline signature),
-- signed, published, superseded (a newer one is published; its leaves stay served until
-- retire_after), retired, abandoned (a pending version overtaken before it was signed).
CREATE TABLE tree_versions (
    tree           TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,
    state          TEXT    NOT NULL,
    enrs           TEXT    NOT NULL,
    links          TEXT    NOT NULL,
    root           TEXT    NOT NULL,
    signature      TEXT,
    created_at     BIGINT  NOT NULL,
    signed_at      BIGINT,
    published_at   BIGINT,
    retire_after   BIGINT,
    PRIMARY KEY (tree, seq)
);
-- The publisher and the DNS server look versions up by state.
CREATE INDEX tree_versions_state ON tree_versions (state, tree);

-- Short leases: only the holder of "publisher" publishes, so several controllers can share a
-- database behind a load balancer.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL
);

