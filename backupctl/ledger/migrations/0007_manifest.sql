-- What a succeeded backup holds, and whether it looked wrong.
--
-- manifest: what the dump was found to hold, recorded when the backup succeeds:
-- {"uncompressed_bytes": N} for every kind, plus "files" and "file_bytes" (regular
-- files) for a files backup, and "tables" (a count) and "table_names" for a postgres
-- one (the tables of the archive's table of contents). NULL for backups made before
-- this, and for those that did not succeed. A drill compares a restore with it.
-- warning: a succeeded nightly backup that looks wrong, e.g. far smaller than the
-- app's usual size ("12.0 KB, 6% of the usual 200.0 KB"). It stays succeeded;
-- check is WARNING for its night, and prune keeps the app's older backups.

ALTER TABLE backups ADD COLUMN manifest jsonb;
ALTER TABLE backups ADD COLUMN warning text;
