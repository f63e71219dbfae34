-- People's access tokens (named, one role each). Only the token's SHA-256 is kept. A revoked
-- token keeps its row (the audit log names it) until an admin makes a new one under its name.
CREATE TABLE access_tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT,
    revoked_by TEXT
);
