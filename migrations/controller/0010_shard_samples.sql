-- Passing nodes per shard over time, for the dashboard's picture of shard coverage: one row
-- per shard per sample. The publisher samples at most once a minute and keeps a week.
CREATE TABLE shard_samples (
    taken_at BIGINT NOT NULL,
    cluster_id INTEGER NOT NULL, -- -1: the node did not say
    shard INTEGER NOT NULL,
    passing INTEGER NOT NULL,
    PRIMARY KEY (taken_at, cluster_id, shard)
);
