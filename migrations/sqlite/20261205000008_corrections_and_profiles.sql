-- What a background import's OFX corrections did.
ALTER TABLE import_jobs ADD COLUMN replaced INTEGER;
ALTER TABLE import_jobs ADD COLUMN deleted INTEGER;

-- A user's saved ways of reading a bank's CSV files: each a name and the
-- import's options (a JSON object of option name to text, as the query
-- string has them).
CREATE TABLE import_profiles (
    id         BLOB    PRIMARY KEY NOT NULL, -- UUID v7
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    name_key   TEXT    NOT NULL, -- lower-cased name: one profile a name, in any case
    options    TEXT    NOT NULL,
    created_at INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, name_key)
);
