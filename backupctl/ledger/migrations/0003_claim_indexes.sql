-- Claims read fresh rows and retryable rows through separate partial indexes on id.
-- With one index over every open status, claimed ('running') rows stayed in it and
-- each claim batch re-read all of them: claims slowed down as the night went on.
-- Keyed on id alone (the claim's ORDER BY), the planner walks only open rows in
-- order instead of the primary key past every claimed one.

DROP INDEX backups_claimable;

CREATE INDEX backups_fresh ON backups (id)
    WHERE trigger = 'nightly' AND status IN ('pending', 'enqueued');

CREATE INDEX backups_retry ON backups (id)
    WHERE trigger = 'nightly' AND status IN ('failed', 'running');
