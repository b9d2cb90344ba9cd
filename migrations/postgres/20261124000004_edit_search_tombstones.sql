-- Lower-cased description, for case-insensitive search (written by the server,
-- so both databases agree on what lower case is).
ALTER TABLE expenses ADD COLUMN description_key TEXT;
UPDATE expenses SET description_key = lower(description);

-- Imported transactions the user deleted: a later import of the same
-- transaction skips it instead of bringing it back.
CREATE TABLE deleted_imports (
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source      TEXT        NOT NULL,
    external_id TEXT        NOT NULL,
    deleted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, source, external_id)
);
