-- Lower-cased description, for case-insensitive search (written by the server,
-- which lower-cases every script; SQLite's lower() only knows ASCII).
ALTER TABLE expenses ADD COLUMN description_key TEXT;
UPDATE expenses SET description_key = lower(description);

-- Imported transactions the user deleted: a later import of the same
-- transaction skips it instead of bringing it back.
CREATE TABLE deleted_imports (
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source      TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    deleted_at  INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    PRIMARY KEY (user_id, source, external_id)
) WITHOUT ROWID;
