-- Drills: one row per restore test of a backup (`backupctl drill`).
--
-- A drill restores a succeeded backup into a scratch target (a new database, a
-- temporary folder or file), compares what came back with the backup's manifest,
-- and removes the scratch target. The row is written once, when the drill ends.
-- restored: what the restore held: {"tables": N, "rows": N} (postgres),
-- {"files": N, "bytes": N} (files), {"bytes": N} (command), plus "note" when the
-- backup had no manifest to compare with. error: why it failed (redacted).

CREATE TABLE drills (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      text NOT NULL,
    backup_id   bigint NOT NULL REFERENCES backups (id),
    run_date    date NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    duration    interval NOT NULL,
    status      text NOT NULL CHECK (status IN ('passed', 'failed')),
    restored    jsonb NOT NULL DEFAULT '{}'::jsonb,
    error       text,
    CHECK (status <> 'failed' OR error IS NOT NULL)
);

-- The latest drill of an app (check, prune, metrics, --sample).
CREATE INDEX drills_by_app ON drills (app_id, started_at DESC);
-- A night's drills (status, runs).
CREATE INDEX drills_by_night ON drills (run_date);
