-- Import ids are opaque: compared byte by byte, whatever the database's
-- collation, so a range of them (the undated fingerprints of older servers)
-- is one stretch of each index.
ALTER TABLE expenses ALTER COLUMN external_id TYPE TEXT COLLATE "C";
ALTER TABLE deleted_imports ALTER COLUMN external_id TYPE TEXT COLLATE "C";
