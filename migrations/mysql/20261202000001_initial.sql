-- MySQL / MariaDB: the same schema as migrations/postgres, in one step.
-- Text compares byte for byte and trailing spaces count (utf8mb4_nopad_bin),
-- as on the other databases; indexed text has a length: categories and
-- emails are validated far below it, bank ids up to 700 characters.

CREATE TABLE users (
    id               BINARY(16)   NOT NULL PRIMARY KEY,
    email            VARCHAR(320) NOT NULL UNIQUE,
    password_hash    TEXT         NOT NULL,
    created_at       DATETIME(6)  NOT NULL, -- UTC
    data_version     BIGINT       NOT NULL DEFAULT 0,
    token_generation BIGINT       NOT NULL DEFAULT 0
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE expenses (
    id              BINARY(16)   NOT NULL PRIMARY KEY, -- UUID v7
    user_id         BINARY(16)   NOT NULL,
    category        VARCHAR(255) NOT NULL,
    category_key    VARCHAR(255) NOT NULL, -- lower-cased category, for grouping and filtering
    description     TEXT,
    description_key TEXT,
    amount_minor    BIGINT       NOT NULL CHECK (amount_minor > 0),
    spent_on        DATE         NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    source          VARCHAR(32)  NOT NULL,
    external_id     VARCHAR(700),          -- the bank's id of an imported transaction
    UNIQUE KEY expenses_once (user_id, source, external_id),
    KEY expenses_by_user_date (user_id, spent_on DESC, created_at DESC, id DESC),
    KEY expenses_by_user_category_date (user_id, category_key, spent_on DESC, created_at DESC, id DESC),
    CONSTRAINT expenses_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE categories (
    user_id      BINARY(16)   NOT NULL,
    category_key VARCHAR(255) NOT NULL,
    name         VARCHAR(255) NOT NULL,
    PRIMARY KEY (user_id, category_key),
    CONSTRAINT categories_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE daily_totals (
    user_id      BINARY(16)   NOT NULL,
    spent_on     DATE         NOT NULL,
    category_key VARCHAR(255) NOT NULL,
    total_minor  BIGINT       NOT NULL,
    count        BIGINT       NOT NULL,
    PRIMARY KEY (user_id, spent_on, category_key),
    CONSTRAINT daily_totals_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE monthly_totals (
    user_id      BINARY(16)   NOT NULL,
    month        DATE         NOT NULL,
    category_key VARCHAR(255) NOT NULL,
    total_minor  BIGINT       NOT NULL,
    count        BIGINT       NOT NULL,
    PRIMARY KEY (user_id, month, category_key),
    CONSTRAINT monthly_totals_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE revoked_tokens (
    jti        BINARY(16) NOT NULL PRIMARY KEY,
    user_id    BINARY(16) NOT NULL,
    expires_at BIGINT     NOT NULL, -- seconds since the Unix epoch
    KEY revoked_tokens_by_expiry (expires_at),
    CONSTRAINT revoked_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE idempotency_keys (
    user_id      BINARY(16)   NOT NULL,
    `key`        VARCHAR(255) NOT NULL,
    request_hash VARCHAR(64)  NOT NULL, -- SHA-256 of the route and the canonical JSON body
    status       INTEGER      NOT NULL,
    body         LONGTEXT     NOT NULL,
    created_at   BIGINT       NOT NULL, -- seconds since the Unix epoch
    PRIMARY KEY (user_id, `key`),
    KEY idempotency_keys_by_age (created_at),
    CONSTRAINT idempotency_keys_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE deleted_imports (
    user_id     BINARY(16)   NOT NULL,
    source      VARCHAR(32)  NOT NULL,
    external_id VARCHAR(700) NOT NULL,
    deleted_at  DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, source, external_id),
    CONSTRAINT deleted_imports_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;

CREATE TABLE import_jobs (
    id          BINARY(16)  NOT NULL PRIMARY KEY,
    user_id     BINARY(16)  NOT NULL,
    source      VARCHAR(32) NOT NULL,
    status      VARCHAR(16) NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    payload     LONGBLOB,             -- the transactions to write (JSON); dropped when the job ends
    report      LONGTEXT    NOT NULL, -- what reading the file found (JSON)
    total       BIGINT      NOT NULL, -- transactions to write
    imported    BIGINT,
    skipped     BIGINT,
    error       TEXT,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    enqueued    BOOLEAN     NOT NULL DEFAULT FALSE, -- true once the queue has it
    created_at  BIGINT      NOT NULL, -- microseconds since the Unix epoch, UTC
    started_at  BIGINT,
    finished_at BIGINT,
    KEY import_jobs_by_status (status, created_at),
    CONSTRAINT import_jobs_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
