-- Surviving a real night.
--
-- claim_tag: each claim statement tags the rows it takes, so that a claim run again
-- after a lost connection (it may have committed unseen) first finds those rows
-- instead of claiming more or none. (No index: it is looked for only then, within
-- one night's running rows.)
-- skipped: a row whose app left the registry (or was disabled) before it ran. It is
-- final and never fails its night.
-- claim_until: past this instant no new backup of the night may start, in any
-- process (NULL: no limit, a night an operator ran with --date or retried).

ALTER TABLE backups ADD COLUMN claim_tag text;

ALTER TABLE backups DROP CONSTRAINT backups_status_check;
ALTER TABLE backups ADD CONSTRAINT backups_status_check CHECK (
    status IN ('pending', 'enqueued', 'running', 'succeeded', 'failed', 'pruned', 'skipped'));

ALTER TABLE nightly_runs ADD COLUMN skipped integer NOT NULL DEFAULT 0;
ALTER TABLE nightly_runs ADD COLUMN claim_until timestamptz;
