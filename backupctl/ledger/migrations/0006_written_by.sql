-- Which program wrote a backup, recorded when it succeeds: "pg_dump 16.2" for a
-- postgres backup (NULL for the other kinds, and for backups made before this).
-- A restore picks a pg_restore that can read it: pg_restore reads no archive written
-- by a newer pg_dump.

ALTER TABLE backups ADD COLUMN written_by text;
