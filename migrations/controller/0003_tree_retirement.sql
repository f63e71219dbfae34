-- Key rotation: a tree being replaced (by one under a new key) stays published until
-- retire_at (Unix ms), the overlap window; then its records are deleted, root first.
ALTER TABLE trees ADD COLUMN retire_at BIGINT;
