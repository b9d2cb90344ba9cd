-- Imports run in the background (`?async=true`). The row is the job's truth:
-- the queue (Redis Streams, or a channel in-process) only says which job to
-- run next, and a job whose queue message was lost is queued again from here.
CREATE TABLE import_jobs (
    id          UUID    PRIMARY KEY,
    user_id     UUID    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source      TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    payload     BYTEA,            -- the transactions to write (JSON); dropped when the job ends
    report      TEXT    NOT NULL, -- what reading the file found (JSON)
    total       BIGINT  NOT NULL, -- transactions to write
    imported    BIGINT,
    skipped     BIGINT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    enqueued    BOOLEAN NOT NULL DEFAULT FALSE, -- true once the queue has it
    created_at  BIGINT  NOT NULL, -- microseconds since the Unix epoch, UTC
    started_at  BIGINT,
    finished_at BIGINT
);
CREATE INDEX import_jobs_unfinished ON import_jobs (created_at) WHERE status IN ('queued', 'running');
