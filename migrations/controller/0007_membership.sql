-- Membership is the operator's. A node's roles now come only from its enrolment token and the
-- operators' API; what a report says the node runs goes to `services` (JSON list). The token's
-- shards (JSON list) and cluster are a ceiling a report may not exceed, copied to the node at
-- enrolment. Until now reports overwrote roles, so today's roles are what nodes ran: keep them
-- as services too.
ALTER TABLE nodes ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
UPDATE nodes SET services = roles;
ALTER TABLE nodes ADD COLUMN ceiling TEXT NOT NULL DEFAULT '{}';
ALTER TABLE enrolment_tokens ADD COLUMN ceiling TEXT NOT NULL DEFAULT '{}';
