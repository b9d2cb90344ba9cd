-- A background import commits in chunks, each with the job's cursor: how
-- many of its transactions are written, and what they came to. A job run
-- again after a crash goes on from there, so each row is written once and
-- its counts stay exact.
ALTER TABLE import_jobs ADD COLUMN written BIGINT NOT NULL DEFAULT 0;
ALTER TABLE import_jobs ADD COLUMN written_imported BIGINT NOT NULL DEFAULT 0;
ALTER TABLE import_jobs ADD COLUMN written_skipped BIGINT NOT NULL DEFAULT 0;
