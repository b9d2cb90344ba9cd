-- What a background import's OFX corrections did.
ALTER TABLE import_jobs ADD COLUMN replaced BIGINT;
ALTER TABLE import_jobs ADD COLUMN deleted BIGINT;

-- A user's saved ways of reading a bank's CSV files: each a name and the
-- import's options (a JSON object of option name to text, as the query
-- string has them).
CREATE TABLE import_profiles (
    id         UUID   PRIMARY KEY,
    user_id    UUID   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    name_key   TEXT   NOT NULL, -- lower-cased name: one profile a name, in any case
    options    TEXT   NOT NULL,
    created_at BIGINT NOT NULL, -- microseconds since the Unix epoch, UTC
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name_key)
);
