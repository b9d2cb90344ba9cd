-- Responses of POST requests sent with an Idempotency-Key, written in the same
-- transaction as what the request created, kept 24 hours.
CREATE TABLE idempotency_keys (
    user_id      UUID   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT   NOT NULL,
    request_hash TEXT   NOT NULL, -- SHA-256 of the route and the canonical JSON body
    status       INTEGER NOT NULL,
    body         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL, -- seconds since the Unix epoch
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
