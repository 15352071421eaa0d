-- A year of history (millions of rows) must cost tonight's work nothing: what a
-- night does touches only that night's part of each index, and `runs` reads counts.
--
-- Indexes. A row that changes status gets a new entry in every index that covers it.
-- One keyed by app first puts tonight's entries at random places in an index as large
-- as the history (a page read per row, once it outgrows memory), so plan and each claim
-- paid for the history. Now only the rows that need a per-app lookup are in those:
-- - backups_one_nightly, the unique nightly row per app and night, is keyed by night
--   first (the same invariant; ON CONFLICT (app_id, run_date) infers it in any order);
-- - backups_by_app holds the succeeded and pruned backups (latest success, usual sizes,
--   restore and drill without --date, prune), entered when a backup finishes;
-- - backups_adhoc_running: running ad-hoc backups by app (reap_adhoc);
-- - the claim indexes are keyed by night too: a final failure of a past night stays
--   failed for good, and every claim short of fresh rows walked all of them;
-- - backups_running replaces backups_open_by_night (night_has_open_rows), which the
--   planner could take for a claim's fresh rows (see below).
--
-- Counts. night_counts: what each night holds, counted as its backups change, so that
-- `runs` reads a few rows per night instead of every backup of it.
--
-- night_counts: the nightly backups of a night in one status, with the bytes they
-- stored (size_bytes) and how many carry a warning. Statement-level triggers on
-- backups add what each statement changed (from its transition tables: the rows as
-- they were and as they are now), so every state change stays one statement and its
-- counts commit with it, whoever runs it (an UPDATE by hand too).
--
-- slot: the server process that made the change (pg_backend_pid()). One process runs
-- one transaction at a time, so two transactions never share a counter row: a single
-- row per night and status would be a lock that every claim and finish queues on,
-- and a deadlock with plan's two statements (it holds its counter rows while it waits
-- for rows a claim holds). A night's counts are the sums over its slots.

-- The strongest lock first: DROP INDEX needs ACCESS EXCLUSIVE, and upgrading a weaker
-- lock to it deadlocks with a transaction that read backups and then writes (an
-- enqueue: SELECT ... FOR UPDATE, send, UPDATE). Nothing reads or writes backups until
-- this commits (tens of seconds on millions of rows).
LOCK TABLE backups IN ACCESS EXCLUSIVE MODE;

DROP INDEX backups_one_nightly;
CREATE UNIQUE INDEX backups_one_nightly ON backups (run_date, app_id) WHERE trigger = 'nightly';

DROP INDEX backups_by_app;
CREATE INDEX backups_by_app ON backups (app_id, run_date DESC)
    WHERE status IN ('succeeded', 'pruned');
CREATE INDEX backups_adhoc_running ON backups (app_id)
    WHERE trigger = 'adhoc' AND status = 'running';

DROP INDEX backups_fresh;
CREATE INDEX backups_fresh ON backups (run_date, id)
    WHERE trigger = 'nightly' AND status IN ('pending', 'enqueued');
DROP INDEX backups_retry;
CREATE INDEX backups_retry ON backups (run_date, id)
    WHERE trigger = 'nightly' AND status IN ('failed', 'running');
-- It covered the claims' fresh rows as well; with the statistics far behind a new
-- night (they are, on a table this large) the planner took it for them, and sorted
-- the whole night for every batch of 100.
DROP INDEX backups_open_by_night;
CREATE INDEX backups_running ON backups (run_date)
    WHERE trigger = 'nightly' AND status = 'running';

CREATE TABLE night_counts (
    run_date date NOT NULL,
    status   text NOT NULL,
    slot     integer NOT NULL,
    backups  bigint NOT NULL DEFAULT 0,
    bytes    bigint NOT NULL DEFAULT 0,
    warnings bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (run_date, status, slot)
);

INSERT INTO night_counts (run_date, status, slot, backups, bytes, warnings)
SELECT run_date, status, 0, count(*), coalesce(sum(size_bytes), 0), count(warning)
FROM backups
WHERE trigger = 'nightly'
GROUP BY run_date, status;

-- Only the changed statement's own relations exist in each branch, hence three.
-- Sorted by key: counter rows are taken in one order.
CREATE FUNCTION count_night_backups() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM night_counts;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO night_counts AS c (run_date, status, slot, backups, bytes, warnings)
        SELECT run_date, status, pg_backend_pid(), count(*), coalesce(sum(size_bytes), 0),
               count(warning)
        FROM new_rows WHERE trigger = 'nightly'
        GROUP BY run_date, status
        ORDER BY run_date, status
        ON CONFLICT (run_date, status, slot) DO UPDATE
        SET backups = c.backups + excluded.backups, bytes = c.bytes + excluded.bytes,
            warnings = c.warnings + excluded.warnings;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO night_counts AS c (run_date, status, slot, backups, bytes, warnings)
        SELECT run_date, status, pg_backend_pid(), -count(*), -coalesce(sum(size_bytes), 0),
               -count(warning)
        FROM old_rows WHERE trigger = 'nightly'
        GROUP BY run_date, status
        ORDER BY run_date, status
        ON CONFLICT (run_date, status, slot) DO UPDATE
        SET backups = c.backups + excluded.backups, bytes = c.bytes + excluded.bytes,
            warnings = c.warnings + excluded.warnings;
    ELSE
        -- A statement that changed no status, size or warning (a heartbeat) adds nothing.
        INSERT INTO night_counts AS c (run_date, status, slot, backups, bytes, warnings)
        SELECT run_date, status, pg_backend_pid(), sum(n), sum(bytes), sum(warnings)
        FROM (
            SELECT run_date, status, 1 AS n, coalesce(size_bytes, 0) AS bytes,
                   (warning IS NOT NULL)::integer AS warnings
            FROM new_rows WHERE trigger = 'nightly'
            UNION ALL
            SELECT run_date, status, -1, -coalesce(size_bytes, 0),
                   -(warning IS NOT NULL)::integer
            FROM old_rows WHERE trigger = 'nightly'
        ) AS change
        GROUP BY run_date, status
        HAVING sum(n) <> 0 OR sum(bytes) <> 0 OR sum(warnings) <> 0
        ORDER BY run_date, status
        ON CONFLICT (run_date, status, slot) DO UPDATE
        SET backups = c.backups + excluded.backups, bytes = c.bytes + excluded.bytes,
            warnings = c.warnings + excluded.warnings;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER backups_counted_on_insert AFTER INSERT ON backups
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_night_backups();
CREATE TRIGGER backups_counted_on_update AFTER UPDATE ON backups
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_night_backups();
CREATE TRIGGER backups_counted_on_delete AFTER DELETE ON backups
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_night_backups();
CREATE TRIGGER backups_counted_on_truncate AFTER TRUNCATE ON backups
    FOR EACH STATEMENT EXECUTE FUNCTION count_night_backups();
