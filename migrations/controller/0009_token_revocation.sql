-- Enrolment tokens can be revoked before they are redeemed (a token sent to the wrong place).
ALTER TABLE enrolment_tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE enrolment_tokens ADD COLUMN revoked_by TEXT;
