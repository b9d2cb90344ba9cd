-- What a background import's OFX corrections did.
ALTER TABLE import_jobs ADD COLUMN replaced BIGINT NULL, ADD COLUMN deleted BIGINT NULL;

-- A user's saved ways of reading a bank's CSV files: each a name and the
-- import's options (a JSON object of option name to text, as the query
-- string has them).
CREATE TABLE import_profiles (
    id         BINARY(16)  NOT NULL PRIMARY KEY,
    user_id    BINARY(16)  NOT NULL,
    name       VARCHAR(64) NOT NULL,
    name_key   VARCHAR(64) NOT NULL, -- lower-cased name: one profile a name, in any case
    options    TEXT        NOT NULL,
    created_at BIGINT      NOT NULL, -- microseconds since the Unix epoch, UTC
    updated_at BIGINT      NOT NULL,
    UNIQUE KEY import_profiles_name (user_id, name_key),
    CONSTRAINT import_profiles_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
