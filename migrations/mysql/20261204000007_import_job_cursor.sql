-- A background import commits in chunks, each with the job's cursor: how
-- many of its transactions are written, and what they came to. A job run
-- again after a crash goes on from there, so each row is written once and
-- its counts stay exact. A table of its own: moving the cursor rewrites a
-- small row, not the job's row with its payload.
CREATE TABLE import_job_cursors (
    job_id   BINARY(16) NOT NULL PRIMARY KEY,
    written  BIGINT NOT NULL,
    imported BIGINT NOT NULL,
    skipped  BIGINT NOT NULL,
    CONSTRAINT import_job_cursors_job FOREIGN KEY (job_id) REFERENCES import_jobs (id) ON DELETE CASCADE
);
