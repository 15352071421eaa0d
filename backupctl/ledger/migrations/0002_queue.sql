-- Enqueue mode: when a backup was last sent to the queue, and one definition of
-- "may be claimed now" shared by direct claims, enqueueing and worker claims.

ALTER TABLE backups ADD COLUMN enqueued_at timestamptz;

-- A simple SQL function: the planner inlines it, so the partial index still applies.
CREATE FUNCTION claimable(
    status text, attempts integer, extra_attempts integer, next_attempt_at timestamptz,
    lease_expires_at timestamptz, max_attempts integer
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT status IN ('pending', 'enqueued')
        OR (status = 'failed' AND attempts < max_attempts + extra_attempts
            AND coalesce(next_attempt_at, now()) <= now())
        OR (status = 'running' AND lease_expires_at < now()
            AND attempts < max_attempts + extra_attempts)
$$;

-- status, runs and the night's recount read one night at a time.
CREATE INDEX backups_by_night ON backups (run_date, trigger, app_id);
DROP INDEX backups_by_app;
CREATE INDEX backups_by_app ON backups (app_id, run_date DESC);
