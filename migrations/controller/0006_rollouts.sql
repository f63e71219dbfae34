-- Rollouts: one desired configuration taken to a list of nodes a few at a time, each node
-- applying it and passing before the next starts; a failure halts the rest. `steps` is JSON
-- (controller::rollout::Step per node, in order).
CREATE TABLE rollouts (
    id            TEXT    PRIMARY KEY,
    created_at    BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL,
    config        TEXT    NOT NULL,
    max_parallel  BIGINT  NOT NULL,
    healthy_secs  BIGINT  NOT NULL,
    deadline_secs BIGINT  NOT NULL,
    state         TEXT    NOT NULL,
    reason        TEXT,
    steps         TEXT    NOT NULL,
    updated_at    BIGINT  NOT NULL
);
