-- Bumped by a password change: tokens carrying an older generation are refused.
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

-- Tokens revoked by logout, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        UUID   PRIMARY KEY,
    user_id    UUID   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL -- seconds since the Unix epoch
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
