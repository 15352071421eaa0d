-- The ledger: one row per night, one row per backup, one row per invocation.

CREATE TABLE nightly_runs (
    run_date     date PRIMARY KEY,
    status       text NOT NULL CHECK (status IN ('running', 'complete', 'incomplete', 'missed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    planned      integer NOT NULL DEFAULT 0,
    succeeded    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0
);

CREATE TABLE backups (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id           text NOT NULL,
    run_date         date NOT NULL,
    trigger          text NOT NULL CHECK (trigger IN ('nightly', 'adhoc')),
    status           text NOT NULL
                     CHECK (status IN ('pending', 'enqueued', 'running', 'succeeded', 'failed', 'pruned')),
    attempts         integer NOT NULL DEFAULT 0,
    extra_attempts   integer NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    artifact_uri     text,
    size_bytes       bigint,
    sha256           text,
    error            text,
    CHECK (status <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (status <> 'succeeded' OR (artifact_uri IS NOT NULL AND sha256 IS NOT NULL))
);

-- Invariant 1 lives in the schema: one nightly backup per app per night.
CREATE UNIQUE INDEX backups_one_nightly ON backups (app_id, run_date) WHERE trigger = 'nightly';

-- Claims read only the rows that may still need work; without this index a
-- SKIP LOCKED claim re-reads everything already done and turns quadratic.
CREATE INDEX backups_claimable ON backups (run_date, id)
    WHERE status IN ('pending', 'enqueued', 'failed', 'running');

CREATE INDEX backups_by_app ON backups (app_id, run_date);

CREATE TABLE invocations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command     text NOT NULL,
    args        text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    os_user     text NOT NULL,
    run_date    date,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    exit_code   integer
);
