-- Users. `data_version` is bumped in the same transaction as every write to the
-- user's expenses; cached summaries are keyed by it.
CREATE TABLE users (
    id            BLOB    PRIMARY KEY NOT NULL,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    data_version  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE expenses (
    id           BLOB    PRIMARY KEY NOT NULL, -- UUID v7
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category     TEXT    NOT NULL,
    category_key TEXT    NOT NULL, -- lower-cased category, for grouping and filtering
    description  TEXT,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    spent_on     TEXT    NOT NULL, -- YYYY-MM-DD
    created_at   INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    source       TEXT    NOT NULL,
    external_id  TEXT,             -- the bank's id of an imported transaction
    UNIQUE (user_id, source, external_id)
);

-- The list's order and keyset pagination.
CREATE INDEX expenses_by_user_date ON expenses (user_id, spent_on DESC, created_at DESC, id DESC);
-- The list filtered by category.
CREATE INDEX expenses_by_user_category_date ON expenses (user_id, category_key, spent_on DESC, created_at DESC, id DESC);

-- How each of a user's categories is shown: as first written.
CREATE TABLE categories (
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_key TEXT NOT NULL,
    name         TEXT NOT NULL,
    PRIMARY KEY (user_id, category_key)
) WITHOUT ROWID;

-- Per-user, per-day, per-category totals, maintained in the same transaction as
-- every write, so the summary's cost follows the number of days and categories,
-- not the length of the history.
CREATE TABLE daily_totals (
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    spent_on     TEXT    NOT NULL,
    category_key TEXT    NOT NULL,
    total_minor  INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (user_id, spent_on, category_key)
) WITHOUT ROWID;
