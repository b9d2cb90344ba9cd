-- Bumped by a password change: tokens carrying an older generation are refused.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;

-- Tokens revoked by logout, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        BLOB    PRIMARY KEY NOT NULL,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL -- seconds since the Unix epoch
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
