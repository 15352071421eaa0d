-- A worker asks after every backup whether its night still has open rows, and
-- check and metrics ask for each app's latest success: both must stay cheap as
-- nights and history grow.

CREATE INDEX backups_open_by_night ON backups (run_date)
    WHERE trigger = 'nightly' AND status IN ('pending', 'enqueued', 'running');

CREATE INDEX backups_last_success ON backups (app_id, finished_at DESC)
    WHERE status = 'succeeded';
