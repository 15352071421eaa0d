-- Every statement backupctl runs against the ledger, by name.
-- Each state change is one statement that checks the state it leaves, and each is
-- safe to run twice: the connector runs a statement again when the connection was
-- lost before its answer came back, so it may already have committed.

-- name: db_now
SELECT now() AS now;

-- name: mark_missed_nights
-- Nights between the last recorded night and this one that never ran.
INSERT INTO nightly_runs (run_date, status)
SELECT d::date, 'missed'
FROM generate_series(
        (SELECT max(run_date) FROM nightly_runs WHERE run_date < %(run_date)s) + 1,
        %(run_date)s::date - 1,
        interval '1 day') AS d
ON CONFLICT (run_date) DO NOTHING;

-- name: close_earlier_nights
-- A new night is planned: earlier nights still open are over. They count as
-- incomplete (a backup that still finishes later recounts its night).
UPDATE nightly_runs SET status = 'incomplete', finished_at = now()
WHERE status = 'running' AND run_date < %(run_date)s;

-- name: open_night
-- claim_until NULL (run-nightly --date) lifts the window for good: an operator ran
-- this night on purpose, and its workers may finish it whenever they get to it.
INSERT INTO nightly_runs (run_date, status, started_at, claim_until)
VALUES (%(run_date)s, 'running', now(), %(claim_until)s)
ON CONFLICT (run_date) DO UPDATE
    SET status = CASE WHEN nightly_runs.status = 'missed' THEN 'running'
                      ELSE nightly_runs.status END,
        started_at = CASE WHEN nightly_runs.status = 'missed' THEN now()
                          ELSE nightly_runs.started_at END,
        claim_until = CASE WHEN %(claim_until)s::timestamptz IS NULL THEN NULL
                           ELSE nightly_runs.claim_until END
    WHERE nightly_runs.status = 'missed'
       OR (%(claim_until)s::timestamptz IS NULL AND nightly_runs.claim_until IS NOT NULL);

-- name: night_size
-- How many nightly rows the night has: more than the apps just planned means some
-- belong to apps no longer listed (the only case skip_removed need run after a plan).
SELECT count(*) AS n FROM backups WHERE run_date = %(run_date)s AND trigger = 'nightly';

-- name: unfinished_rows
-- The night's rows that have not run and may not: what skip_removed may skip. (The
-- ledger compares their apps with the registry in Python: an anti-join against a
-- 100k-element array is a nested loop whenever the planner's estimates are off, as
-- they are for a night planned a moment ago.)
SELECT id, app_id FROM backups
WHERE run_date = %(run_date)s AND trigger = 'nightly'
  AND (status IN ('pending', 'enqueued', 'failed')
       OR (status = 'running' AND lease_expires_at < now()));

-- name: skip_removed
-- Rows of apps that left the registry (or were disabled) since the night was planned.
-- Rows running under a live lease finish as they are.
UPDATE backups AS b
SET status = 'skipped', finished_at = now(), next_attempt_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL,
    error = 'skipped: the app is no longer in the registry (or is disabled)'
            || coalesce('; before that: ' || b.error, '')
WHERE b.id = ANY(%(ids)s)
  AND (b.status IN ('pending', 'enqueued', 'failed')
       OR (b.status = 'running' AND b.lease_expires_at < now()))
RETURNING b.id, b.app_id, b.run_date, b.attempts, b.trigger;

-- name: plan_backups
INSERT INTO backups (app_id, run_date, trigger, status)
SELECT app_id, %(run_date)s, 'nightly', 'pending'
FROM unnest(%(app_ids)s::text[]) AS app_id
ON CONFLICT (app_id, run_date) WHERE trigger = 'nightly' DO NOTHING;

-- name: backups_rows_known
-- How many rows the planner's statistics of backups know of (-1: never analyzed).
SELECT reltuples::bigint AS n FROM pg_class WHERE oid = 'backups'::regclass;

-- name: reap_expired
-- Rows whose process died on their last attempt: nobody may take them over.
UPDATE backups
SET status = 'failed', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    error = 'the process running this backup stopped (its lease expired) on the last attempt'
WHERE run_date = %(run_date)s AND trigger = 'nightly' AND status = 'running'
  AND lease_expires_at < now() AND attempts >= %(max_attempts)s + extra_attempts
RETURNING id, app_id, run_date, attempts, trigger;

-- name: claim_nightly
-- New rows first, through their own index; retries (failed with attempts left, or
-- running under an expired lease) only when new rows run short of the limit. The
-- rows carry the claim's tag: run again after a lost answer, claimed_by_tag comes first.
WITH night_open AS (
    -- Past the night's claim_until nothing new starts, whoever asks (a worker too).
    SELECT NOT EXISTS (SELECT 1 FROM nightly_runs
                       WHERE run_date = %(run_date)s AND claim_until <= now()) AS ok
), fresh AS (
    SELECT id FROM backups
    WHERE run_date = %(run_date)s AND trigger = 'nightly'
      AND (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
      AND status IN ('pending', 'enqueued')
      AND (SELECT ok FROM night_open)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), retry AS (
    SELECT id FROM backups
    WHERE run_date = %(run_date)s AND trigger = 'nightly'
      AND (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
      AND status IN ('failed', 'running')
      AND (SELECT ok FROM night_open)
      AND claimable(status, attempts, extra_attempts, next_attempt_at, lease_expires_at,
                    %(max_attempts)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimable AS (
    SELECT id FROM fresh
    UNION ALL
    SELECT id FROM retry
    LIMIT %(limit)s
)
UPDATE backups AS b
SET status = 'running', attempts = b.attempts + 1, lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s),
    started_at = now(), finished_at = NULL, next_attempt_at = NULL, claim_tag = %(tag)s
FROM claimable
WHERE b.id = claimable.id
RETURNING b.id, b.app_id, b.run_date, b.attempts, b.trigger, %(lease)s::float8 AS lease_left;

-- name: claimed_by_tag
-- What a claim statement (claim_nightly, claim_backup, start_adhoc) took, when its
-- answer was lost with the connection: asked before that claim is run once more.
-- (Found late: the lease the claim took has been running out since.)
SELECT id, app_id, run_date, attempts, trigger,
       extract(epoch FROM lease_expires_at - now())::float8 AS lease_left
FROM backups
WHERE run_date = %(run_date)s AND trigger = %(trigger)s AND status = 'running'
  AND claim_tag = %(tag)s AND lease_owner = %(owner)s;

-- name: claim_backup
-- A worker's claim of the backup a message names; the message must match the row,
-- and the night's window (claim_until) must not have closed.
UPDATE backups
SET status = 'running', attempts = attempts + 1, lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s),
    started_at = now(), finished_at = NULL, next_attempt_at = NULL, claim_tag = %(tag)s
WHERE id = %(id)s AND app_id = %(app_id)s AND run_date = %(run_date)s
  AND status IN ('pending', 'enqueued', 'failed', 'running')
  AND claimable(status, attempts, extra_attempts, next_attempt_at, lease_expires_at,
                %(max_attempts)s)
  AND NOT EXISTS (SELECT 1 FROM nightly_runs AS n
                  WHERE n.run_date = backups.run_date AND n.claim_until <= now())
RETURNING id, app_id, run_date, attempts, trigger, %(lease)s::float8 AS lease_left;

-- name: unsend
-- A worker dropped this backup's message (its night's window had closed): not sent.
UPDATE backups SET status = 'pending', enqueued_at = NULL
WHERE id = %(id)s AND status = 'enqueued';

-- name: skip_claimed
-- The app of a row just claimed is no longer in the registry: skipped, not failed.
WITH done AS (
    UPDATE backups
    SET status = 'skipped', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
        error = %(reason)s
    WHERE id = %(id)s AND status = 'running' AND lease_owner = %(owner)s
      AND attempts = %(attempt)s
    RETURNING id
)
SELECT id FROM done
UNION ALL
SELECT id FROM backups WHERE id = %(id)s AND status = 'skipped' AND error = %(reason)s;

-- name: lock_for_enqueue
-- Rows to (re)send: never sent, sent long ago without progress, failed with attempts
-- left, or held by a dead process. Locked until mark_enqueued commits.
SELECT id, app_id, run_date, attempts
FROM backups
WHERE run_date = %(run_date)s AND trigger = 'nightly' AND id > %(after_id)s
  AND (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
  AND status IN ('pending', 'enqueued', 'failed', 'running')
  AND claimable(status, attempts, extra_attempts, next_attempt_at, lease_expires_at,
                %(max_attempts)s)
  AND NOT (status = 'enqueued'
           AND enqueued_at >= now() - make_interval(secs => %(resend_after)s))
ORDER BY id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: mark_enqueued
UPDATE backups
SET status = 'enqueued', enqueued_at = now(), lease_owner = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s) AND status IN ('pending', 'enqueued', 'failed', 'running');

-- name: night_pending
-- What still stands between this night and its end, as seen by one process.
SELECT
    count(*) FILTER (WHERE status = 'running' AND lease_expires_at >= now()) AS held,
    count(*) FILTER (WHERE status = 'failed' AND attempts < %(max_attempts)s + extra_attempts) AS retryable,
    min(next_attempt_at) FILTER (WHERE status = 'failed'
                                 AND attempts < %(max_attempts)s + extra_attempts) AS next_retry_at,
    extract(epoch FROM min(next_attempt_at) FILTER (
        WHERE status = 'failed' AND attempts < %(max_attempts)s + extra_attempts) - now())
        AS next_retry_in
FROM backups
WHERE run_date = %(run_date)s AND trigger = 'nightly'
  AND (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
  AND status IN ('pending', 'enqueued', 'failed', 'running');

-- name: heartbeat
UPDATE backups
SET lease_expires_at = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(ids)s) AND status = 'running' AND lease_owner = %(owner)s
RETURNING id, attempts;

-- name: finish_succeeded
-- Fenced on the lease owner and attempt. The second half finds this very finish
-- committed by an earlier run of the statement whose answer was lost: without it, a
-- retry would look fenced and delete the artifact the ledger now points to.
WITH done AS (
    UPDATE backups
    SET status = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
        artifact_uri = %(artifact_uri)s, size_bytes = %(size_bytes)s, sha256 = %(sha256)s,
        written_by = %(written_by)s, manifest = %(manifest)s::jsonb, warning = %(warning)s,
        hook_warning = %(hook_warning)s, error = NULL
    WHERE id = %(id)s AND status = 'running' AND lease_owner = %(owner)s
      AND attempts = %(attempt)s
    RETURNING id
)
SELECT id FROM done
UNION ALL
SELECT id FROM backups
WHERE id = %(id)s AND status = 'succeeded' AND artifact_uri = %(artifact_uri)s
  AND sha256 = %(sha256)s;

-- name: finish_failed
-- The retry waits retry_wait, doubling per attempt, at most retry_wait_max. A final
-- failure (an empty backup: another attempt would find it empty again) uses up the
-- attempts of this round, so only an operator's `retry` (a new round) runs it again.
WITH done AS (
    UPDATE backups
    SET status = 'failed', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
        error = %(error)s, hook_warning = %(hook_warning)s,
        extra_attempts = CASE WHEN %(final)s THEN least(extra_attempts, attempts - %(max_attempts)s)
                              ELSE extra_attempts END,
        next_attempt_at = now() + make_interval(secs => least(
            %(retry_wait)s * power(2, least(attempts - 1, 40)), %(retry_wait_max)s))
    WHERE id = %(id)s AND status = 'running' AND lease_owner = %(owner)s
      AND attempts = %(attempt)s
    RETURNING id
)
SELECT id FROM done
UNION ALL
SELECT id FROM backups
WHERE id = %(id)s AND status = 'failed' AND attempts = %(attempt)s AND error = %(error)s;

-- name: release
-- Give a claimed row back (shutdown): the attempt is not counted.
UPDATE backups
SET status = %(status)s, attempts = attempts - 1, lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND status = 'running' AND lease_owner = %(owner)s AND attempts = %(attempt)s
RETURNING id;

-- name: close_night
-- Recount the night from its rows; a rerun that changed nothing leaves it as it was.
WITH counts AS (
    SELECT count(*)::integer AS planned,
           count(*) FILTER (WHERE status IN ('succeeded', 'pruned'))::integer AS succeeded,
           count(*) FILTER (WHERE status = 'failed')::integer AS failed,
           count(*) FILTER (WHERE status = 'skipped')::integer AS skipped,
           count(*) FILTER (WHERE status IN ('pending', 'enqueued', 'running'))::integer AS open
    FROM backups WHERE run_date = %(run_date)s AND trigger = 'nightly'
), verdict AS (
    -- A skipped row (its app left the registry) never fails the night.
    SELECT counts.*,
           CASE WHEN open > 0 THEN 'running'
                WHEN failed > 0 OR succeeded + skipped < planned THEN 'incomplete'
                ELSE 'complete' END AS status
    FROM counts
)
UPDATE nightly_runs AS n
SET status = v.status,
    finished_at = CASE WHEN v.status = 'running' THEN NULL ELSE now() END,
    planned = v.planned, succeeded = v.succeeded, failed = v.failed, skipped = v.skipped
FROM verdict AS v
WHERE n.run_date = %(run_date)s
  AND (n.status, n.planned, n.succeeded, n.failed, n.skipped)
      IS DISTINCT FROM (v.status, v.planned, v.succeeded, v.failed, v.skipped);

-- name: night_has_open_rows
-- Cheap (backups_fresh, backups_running): is anything of the night still pending or
-- running?
SELECT EXISTS (SELECT 1 FROM backups
               WHERE run_date = %(run_date)s AND trigger = 'nightly'
                 AND status IN ('pending', 'enqueued'))
    OR EXISTS (SELECT 1 FROM backups
               WHERE run_date = %(run_date)s AND trigger = 'nightly'
                 AND status = 'running') AS open;

-- name: night_backups
SELECT id, app_id, run_date, trigger, status, attempts, extra_attempts, lease_owner,
       lease_expires_at, lease_expires_at < now() AS lease_expired, started_at, finished_at,
       extract(epoch FROM finished_at - started_at) AS duration_s,
       artifact_uri, size_bytes, sha256, error, warning, hook_warning
FROM backups
WHERE run_date = %(run_date)s AND trigger = 'nightly'
ORDER BY app_id;

-- name: get_night
SELECT run_date, status, created_at, started_at, finished_at, planned, succeeded, failed,
       skipped, claim_until
FROM nightly_runs WHERE run_date = %(run_date)s;

-- name: night_range
-- The first and last night recorded (missed ones included): what a date not
-- among them is told to pick from.
SELECT min(run_date) AS first, max(run_date) AS last FROM nightly_runs;

-- name: night_apps
-- How many apps a night has, and the first few ids (for a message, so a night of
-- 100k apps is not read whole).
SELECT (SELECT count(*) FROM backups
        WHERE run_date = %(run_date)s AND trigger = 'nightly') AS apps,
       ARRAY(SELECT app_id FROM backups
             WHERE run_date = %(run_date)s AND trigger = 'nightly'
             ORDER BY app_id LIMIT %(limit)s) AS sample;

-- name: night_statuses
-- The night's nightly backups (or one app's) by status: what a retry with nothing
-- failed says the night holds instead.
SELECT status, count(*) AS n FROM backups
WHERE run_date = %(run_date)s AND trigger = 'nightly'
  AND (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
GROUP BY status
ORDER BY status;

-- name: latest_planned_before
-- The apps of the latest earlier night that planned any backup: what the registry
-- guard compares today's registry with.
WITH earlier AS (
    SELECT run_date FROM nightly_runs
    WHERE run_date < %(run_date)s AND status <> 'missed'
      AND EXISTS (SELECT 1 FROM backups AS x
                  WHERE x.run_date = nightly_runs.run_date AND x.trigger = 'nightly')
    ORDER BY run_date DESC LIMIT 1
)
SELECT e.run_date, b.app_id
FROM earlier AS e
JOIN backups AS b ON b.run_date = e.run_date AND b.trigger = 'nightly';

-- name: latest_night
SELECT max(run_date) AS run_date FROM nightly_runs WHERE status <> 'missed';

-- name: start_invocation
INSERT INTO invocations (command, args, host, pid, os_user, run_date)
VALUES (%(command)s, %(args)s, %(host)s, %(pid)s, %(os_user)s, %(run_date)s)
RETURNING id;

-- name: finish_invocation
UPDATE invocations SET finished_at = now(), exit_code = %(exit_code)s
WHERE id = %(id)s AND finished_at IS NULL;

-- name: nightly_artifact
SELECT id, app_id, run_date, trigger, status, artifact_uri, size_bytes, sha256, written_by
FROM backups
WHERE app_id = %(app_id)s AND run_date = %(run_date)s AND trigger = 'nightly';

-- name: latest_nightly_succeeded
-- What `restore APP` without --date restores (backups_by_app covers it).
SELECT id, app_id, run_date, trigger, status, artifact_uri, size_bytes, sha256, written_by
FROM backups
WHERE app_id = %(app_id)s AND trigger = 'nightly' AND status = 'succeeded'
ORDER BY run_date DESC
LIMIT 1;

-- name: backup_by_id
SELECT b.id, b.app_id, b.run_date, b.trigger, b.status, b.artifact_uri, b.size_bytes,
       b.sha256, b.written_by, b.attempts, b.extra_attempts,
       extract(epoch FROM b.next_attempt_at - now()) AS retry_in,
       coalesce(n.claim_until <= now(), false) AS claims_closed
FROM backups AS b
LEFT JOIN nightly_runs AS n ON n.run_date = b.run_date AND b.trigger = 'nightly'
WHERE b.id = %(id)s;

-- name: start_adhoc
-- An ad-hoc backup: its own row (never the night's), claimed at once by its runner.
INSERT INTO backups (app_id, run_date, trigger, status, attempts, lease_owner,
                     lease_expires_at, started_at, claim_tag)
VALUES (%(app_id)s, %(run_date)s, 'adhoc', 'running', 1, %(owner)s,
        now() + make_interval(secs => %(lease)s), now(), %(tag)s)
RETURNING id, app_id, run_date, attempts, trigger, %(lease)s::float8 AS lease_left;

-- name: list_nights
-- The counts come from night_counts (kept by triggers on backups): a few rows per
-- night, not every backup of it.
SELECT n.run_date, n.status, n.started_at, n.finished_at,
       extract(epoch FROM n.finished_at - n.started_at) AS duration_s,
       coalesce(sum(c.backups), 0)::bigint AS planned,
       coalesce(sum(c.backups) FILTER (WHERE c.status = 'succeeded'), 0)::bigint AS succeeded,
       coalesce(sum(c.backups) FILTER (WHERE c.status = 'failed'), 0)::bigint AS failed,
       coalesce(sum(c.backups) FILTER (WHERE c.status IN ('pending', 'enqueued')), 0)::bigint
           AS waiting,
       coalesce(sum(c.backups) FILTER (WHERE c.status = 'running'), 0)::bigint AS running,
       coalesce(sum(c.backups) FILTER (WHERE c.status = 'pruned'), 0)::bigint AS pruned,
       coalesce(sum(c.backups) FILTER (WHERE c.status = 'skipped'), 0)::bigint AS skipped,
       coalesce(sum(c.warnings) FILTER (WHERE c.status = 'succeeded'), 0)::bigint AS warnings,
       coalesce(sum(c.bytes) FILTER (WHERE c.status = 'succeeded'), 0)::bigint AS bytes,
       (SELECT count(*) FROM drills AS d WHERE d.run_date = n.run_date) AS drills,
       (SELECT count(*) FROM drills AS d
        WHERE d.run_date = n.run_date AND d.status = 'failed') AS drills_failed
FROM (SELECT * FROM nightly_runs ORDER BY run_date DESC LIMIT %(last)s) AS n
LEFT JOIN night_counts AS c ON c.run_date = n.run_date
GROUP BY n.run_date, n.status, n.started_at, n.finished_at
ORDER BY n.run_date DESC;

-- name: grant_retry
-- One more round: as many attempts as max_attempts, from now, for failed backups.
-- An operator's retry is not bound by the night's window any more.
WITH night AS (
    UPDATE nightly_runs SET claim_until = NULL
    WHERE run_date = %(run_date)s AND claim_until IS NOT NULL
)
UPDATE backups
SET extra_attempts = attempts, next_attempt_at = now()
WHERE run_date = %(run_date)s AND trigger = 'nightly' AND status = 'failed'
  AND (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
RETURNING id, app_id;

-- name: last_successes
-- Per app, its latest succeeded backup of either trigger: one probe of
-- backups_last_success per app, however many successes its history holds.
SELECT a.app_id, l.finished_at, l.trigger, l.run_date, l.size_bytes, l.duration_s
FROM (SELECT DISTINCT unnest(%(app_ids)s::text[]) AS app_id) AS a
JOIN LATERAL (
    SELECT finished_at, trigger, run_date, size_bytes,
           extract(epoch FROM finished_at - started_at) AS duration_s
    FROM backups
    WHERE status = 'succeeded' AND app_id = a.app_id
    ORDER BY finished_at DESC
    LIMIT 1
) AS l ON true;

-- name: succeeded_backups
-- Succeeded backups to verify: one night's (or every night's), optionally one app's.
SELECT id, app_id, run_date, trigger, status, artifact_uri, size_bytes, sha256
FROM backups
WHERE status = 'succeeded'
  AND (%(run_date)s::date IS NULL OR run_date = %(run_date)s)
  AND (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
ORDER BY run_date DESC, app_id, id;

-- name: nightly_succeeded_by_app
-- Every app's succeeded nightly backups, newest night first: what retention looks at.
-- (Only what prune uses: a year of history is millions of rows.)
SELECT id, app_id, run_date, artifact_uri, size_bytes, warning
FROM backups
WHERE trigger = 'nightly' AND status = 'succeeded'
ORDER BY app_id, run_date DESC;

-- name: mark_pruned
-- A batch of rows at once. 'pruned' too: run again after a lost answer, their
-- artifacts are still deleted.
UPDATE backups SET status = 'pruned'
WHERE id = ANY(%(ids)s) AND status IN ('succeeded', 'pruned')
RETURNING id;

-- name: reap_adhoc
-- Ad-hoc backups of an app whose process died: nobody takes them over.
UPDATE backups
SET status = 'failed', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    error = 'the process running this backup stopped (its lease expired)'
WHERE app_id = %(app_id)s AND trigger = 'adhoc' AND status = 'running'
  AND lease_expires_at < now()
RETURNING id, app_id, run_date, attempts, trigger;

-- name: backups_by_ids
-- The rows that files in storage name (by the backup id in their names).
SELECT id, app_id, status, artifact_uri FROM backups WHERE id = ANY(%(ids)s);

-- name: usual_sizes
-- The stored sizes of an app's latest succeeded nightly backups before a night (pruned
-- ones too: they were good backups, and their size is still recorded), newest
-- first: what the size guard compares a new backup with (backups_by_app covers it).
SELECT size_bytes
FROM backups
WHERE app_id = %(app_id)s AND trigger = 'nightly' AND run_date < %(run_date)s
  AND status IN ('succeeded', 'pruned') AND size_bytes IS NOT NULL
ORDER BY run_date DESC
LIMIT %(limit)s;

-- name: backup_manifest
-- What a backup was found to hold when it succeeded (NULL: made before manifests).
SELECT id, app_id, run_date, trigger, status, manifest, warning
FROM backups WHERE id = %(id)s;

-- name: record_drill
-- A drill ended: its one row. Run again after a lost answer, the row it wrote is
-- found (same backup, same start) instead of a second one.
WITH found AS (
    SELECT id FROM drills
    WHERE backup_id = %(backup_id)s AND started_at = %(started_at)s
), added AS (
    INSERT INTO drills (app_id, backup_id, run_date, started_at, duration, status,
                        restored, error)
    SELECT %(app_id)s, %(backup_id)s, %(run_date)s, %(started_at)s,
           make_interval(secs => %(duration_s)s), %(status)s, %(restored)s::jsonb, %(error)s
    WHERE NOT EXISTS (SELECT 1 FROM found)
    RETURNING id
)
SELECT id FROM added UNION ALL SELECT id FROM found;

-- name: latest_drills
-- Per app, its latest drill and its latest passed one (check, prune, metrics).
SELECT a.app_id,
       l.status AS last_status, l.started_at AS last_started_at, l.backup_id AS last_backup_id,
       l.run_date AS last_run_date, l.error AS last_error,
       extract(epoch FROM l.duration)::float8 AS last_duration_s,
       p.finished_at AS last_passed_at
FROM unnest(%(app_ids)s::text[]) AS a(app_id)
LEFT JOIN LATERAL (
    SELECT status, started_at, backup_id, run_date, error, duration FROM drills
    WHERE drills.app_id = a.app_id ORDER BY started_at DESC, id DESC LIMIT 1
) AS l ON true
LEFT JOIN LATERAL (
    SELECT finished_at FROM drills
    WHERE drills.app_id = a.app_id AND status = 'passed'
    ORDER BY started_at DESC, id DESC LIMIT 1
) AS p ON true;

-- name: night_drills
-- The drills of a night's backups, newest first.
SELECT id, app_id, backup_id, run_date, started_at, finished_at,
       extract(epoch FROM duration)::float8 AS duration_s, status, restored, error
FROM drills
WHERE run_date = %(run_date)s
ORDER BY app_id, started_at DESC, id DESC;

-- name: drillable_backup
-- What `drill` restores: the app's succeeded nightly backup of a night, or (no
-- night given) of the latest night that has one; with its manifest.
SELECT id, app_id, run_date, trigger, status, artifact_uri, size_bytes, sha256, written_by,
       manifest
FROM backups
WHERE app_id = %(app_id)s AND trigger = 'nightly' AND status = 'succeeded'
  AND (%(run_date)s::date IS NULL OR run_date = %(run_date)s)
ORDER BY run_date DESC
LIMIT 1;

-- name: claim_notification
-- Take the right to send one night's event to one notify URL: a new row, one whose
-- send failed, or one whose sender has held it past stale_after seconds (it died).
-- The same owner gets its claim back (the statement may run twice after a lost answer).
INSERT INTO notifications (run_date, event, url_hash, status, claimed_by)
VALUES (%(run_date)s, %(event)s, %(url_hash)s, 'sending', %(owner)s)
ON CONFLICT (run_date, event, url_hash) DO UPDATE
SET status = 'sending', claimed_by = EXCLUDED.claimed_by, claimed_at = now(),
    attempts = notifications.attempts
               + CASE WHEN notifications.claimed_by = EXCLUDED.claimed_by THEN 0 ELSE 1 END
WHERE notifications.status = 'failed'
   OR (notifications.status = 'sending'
       AND (notifications.claimed_by = EXCLUDED.claimed_by
            OR notifications.claimed_at < now() - make_interval(secs => %(stale_after)s)))
RETURNING attempts;

-- name: finish_notification
-- The claimed send is over: 'sent', or 'failed' (with why) for the next sender to retry.
-- Only the claim's owner may mark it (one taken over is no longer its).
UPDATE notifications
SET status = %(status)s,
    sent_at = CASE WHEN %(status)s = 'sent' THEN now() END,
    error = %(error)s
WHERE run_date = %(run_date)s AND event = %(event)s AND url_hash = %(url_hash)s
  AND claimed_by = %(owner)s AND status = 'sending'
RETURNING run_date;

-- name: night_before
-- The latest recorded night before this one, and whether it failed or was missed
-- (also when a retry has since completed it: its failure was told).
SELECT n.run_date, n.status,
       n.status IN ('incomplete', 'missed')
       OR EXISTS (SELECT 1 FROM notifications AS x
                  WHERE x.run_date = n.run_date AND x.event IN ('failure', 'missed')) AS bad
FROM nightly_runs AS n
WHERE n.run_date < %(run_date)s
ORDER BY n.run_date DESC
LIMIT 1;

-- name: night_notifications
-- What was told about a night (status shows it; tests read it).
SELECT run_date, event, url_hash, status, attempts, claimed_at, sent_at, error
FROM notifications WHERE run_date = %(run_date)s
ORDER BY event, url_hash;

-- name: grid_nights
-- The grid's columns: the latest nights recorded (missed ones too), newest first,
-- with their drills counted (drills_by_night).
SELECT n.run_date, n.status,
       extract(epoch FROM n.finished_at - n.started_at)::float8 AS duration_s,
       (SELECT count(*) FROM drills AS d WHERE d.run_date = n.run_date) AS drills,
       (SELECT count(*) FROM drills AS d
        WHERE d.run_date = n.run_date AND d.status = 'failed') AS drills_failed
FROM nightly_runs AS n
ORDER BY n.run_date DESC
LIMIT %(last)s;

-- name: index_friendly_plan
-- For the transaction of a read of some nights out of a long history. Those nights'
-- rows lie together on disk (a night is planned in one statement), but with the
-- default random_page_cost (4, for spinning disks) the planner takes an index range
-- over 30 of 365 nights for scattered reads and scans the whole table instead: 3x
-- slower. 1.1 is the value usual for SSDs. SET LOCAL: this transaction only.
SET LOCAL random_page_cost = 1.1;

-- name: grid_cells
-- The grid's cells: the nightly backups of a range of nights only (never all
-- history). note: the error, or a succeeded backup's warnings, cut short, and only
-- when asked for (the page shows them, the terminal does not).
SELECT app_id, run_date, status, size_bytes,
       extract(epoch FROM finished_at - started_at)::float8 AS duration_s,
       (warning IS NOT NULL OR hook_warning IS NOT NULL) AS warned,
       CASE WHEN %(notes)s THEN nullif(left(
           CASE WHEN status IN ('succeeded', 'pruned') THEN concat_ws('; ', warning, hook_warning)
                ELSE concat_ws('; ', error, hook_warning) END, %(note_chars)s), '')
       END AS note
FROM backups
WHERE trigger = 'nightly' AND run_date BETWEEN %(first)s AND %(last)s;

-- name: grid_states
-- grid_cells with only what the terminal's grid shows: the status, and whether a
-- succeeded backup carries a warning.
SELECT app_id, run_date, status, (warning IS NOT NULL OR hook_warning IS NOT NULL) AS warned
FROM backups
WHERE trigger = 'nightly' AND run_date BETWEEN %(first)s AND %(last)s;

-- name: grid_drills
-- The latest drills of a range of nights (of some apps, or of all: NULL), failed
-- ones first (drills_by_night).
SELECT app_id, backup_id, run_date, started_at, status, restored,
       extract(epoch FROM duration)::float8 AS duration_s,
       left(error, %(note_chars)s) AS error
FROM drills
WHERE run_date BETWEEN %(first)s AND %(last)s
  AND (%(app_ids)s::text[] IS NULL OR app_id = ANY(%(app_ids)s::text[]))
ORDER BY status = 'failed' DESC, started_at DESC, id DESC
LIMIT %(limit)s;
