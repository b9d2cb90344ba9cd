-- Imports run in the background (`?async=true`). The row is the job's truth:
-- the queue (Redis Streams, or a channel in-process) only says which job to
-- run next, and a job whose queue message was lost is queued again from here.
CREATE TABLE import_jobs (
    id          BLOB    PRIMARY KEY NOT NULL, -- UUID v7
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source      TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    payload     BLOB,             -- the transactions to write (JSON); dropped when the job ends
    report      TEXT    NOT NULL, -- what reading the file found (JSON)
    total       INTEGER NOT NULL, -- transactions to write
    imported    INTEGER,
    skipped     INTEGER,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    enqueued    INTEGER NOT NULL DEFAULT 0, -- 1 once the queue has it
    created_at  INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX import_jobs_unfinished ON import_jobs (created_at) WHERE status IN ('queued', 'running');
