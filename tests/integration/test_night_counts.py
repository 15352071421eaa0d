"""night_counts (migration 0011_long_history): each night's backups counted by status, kept by
triggers on backups. After every kind of transition the counts must equal what the
backups table itself says, and a ledger made before 0011 must come out of the
migration with counts that match its rows."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import psycopg

from backupctl.ledger import Claim, Ledger, connect_ledger
from backupctl.ledger.queries import migrations
from tests.integration.conftest import sql

NIGHT = date(2026, 11, 28)
APPS = ["a", "b", "c", "d", "e", "f"]
Counts = dict[tuple[date, str], tuple[int, int, int]]


def from_rows(ledger: Ledger) -> Counts:
    """What the backups table says: nightly backups per night and status."""
    rows = sql(
        ledger,
        "SELECT run_date, status, count(*) AS n, coalesce(sum(size_bytes), 0) AS bytes,"
        " count(warning) AS warnings FROM backups WHERE trigger = 'nightly'"
        " GROUP BY run_date, status",
    )
    return {(r["run_date"], r["status"]): (r["n"], r["bytes"], r["warnings"]) for r in rows}


def from_counts(ledger: Ledger) -> Counts:
    """What night_counts says (a status whose count came back to zero is none)."""
    rows = sql(
        ledger,
        "SELECT run_date, status, sum(backups)::bigint AS n, sum(bytes)::bigint AS bytes,"
        " sum(warnings)::bigint AS warnings FROM night_counts GROUP BY run_date, status"
        " HAVING sum(backups) <> 0 OR sum(bytes) <> 0 OR sum(warnings) <> 0",
    )
    return {(r["run_date"], r["status"]): (r["n"], r["bytes"], r["warnings"]) for r in rows}


def assert_counts_match(ledger: Ledger) -> Counts:
    expected = from_rows(ledger)
    assert from_counts(ledger) == expected
    return expected


def claim_all(ledger: Ledger, owner: str = "p", app_id: str | None = None) -> list[Claim]:
    return ledger.claim_nightly(NIGHT, owner, 100, 60, 3, app_id=app_id)


def test_counts_follow_every_kind_of_transition(ledger: Ledger) -> None:
    ledger.plan(NIGHT, APPS)  # plan
    assert assert_counts_match(ledger) == {(NIGHT, "pending"): (6, 0, 0)}

    sent = ledger.enqueue(NIGHT, 2, 3, 3600, lambda rows: {int(r["id"]) for r in rows})
    assert sent[1] == 2  # enqueue
    assert_counts_match(ledger)
    [enqueued] = sql(ledger, "SELECT id FROM backups WHERE status = 'enqueued' LIMIT 1")
    ledger.unsend(int(enqueued["id"]))  # unsend
    assert_counts_match(ledger)

    claims = {c.app_id: c for c in claim_all(ledger)}  # claim
    assert assert_counts_match(ledger) == {(NIGHT, "running"): (6, 0, 0)}
    ledger.heartbeat("p", [c.id for c in claims.values()], 60)  # no change of count
    assert_counts_match(ledger)

    assert ledger.finish_succeeded(claims["a"], "p", "file:///a", 100, "aa")  # succeed
    assert ledger.finish_succeeded(
        claims["b"], "p", "file:///b", 7, "bb", warning="far smaller than usual"
    )
    assert ledger.finish_failed(claims["c"], "p", "boom", 0, 0)  # fail
    assert ledger.release(claims["d"], "p")  # give back
    assert ledger.skip_claimed(claims["e"], "p", "skipped: gone")  # skip a claimed row
    assert assert_counts_match(ledger)[(NIGHT, "succeeded")] == (2, 107, 1)

    ledger.plan(NIGHT, ["a", "b", "c", "f"])  # skip: d left the registry
    assert_counts_match(ledger)

    assert ledger.grant_retry(NIGHT, None) == ["c"]  # retry
    [again] = claim_all(ledger, app_id="c")
    assert ledger.finish_succeeded(again, "p", "file:///c", 5, "cc")
    assert_counts_match(ledger)

    sql(ledger, "UPDATE backups SET lease_expires_at = now() - interval '1 s'"
        " WHERE status = 'running'")  # fmt: skip
    assert [r.app_id for r in ledger.reap_expired(NIGHT, 1)] == ["f"]  # reap
    assert_counts_match(ledger)

    assert ledger.mark_pruned([claims["a"].id, claims["b"].id]) == {  # prune
        claims["a"].id,
        claims["b"].id,
    }
    counts = assert_counts_match(ledger)
    assert counts[(NIGHT, "pruned")] == (2, 107, 1)
    assert counts[(NIGHT, "succeeded")] == (1, 5, 0)

    adhoc = ledger.start_adhoc("a", NIGHT, "p", 60)  # ad hoc: not a night's backup
    ledger.finish_succeeded(adhoc, "p", "file:///adhoc", 9, "dd")
    assert assert_counts_match(ledger) == counts

    ledger.plan(NIGHT + timedelta(days=2), APPS)  # another night (and a missed one)
    sql(ledger, "DELETE FROM drills")
    sql(ledger, "DELETE FROM backups WHERE run_date = %s", [NIGHT])  # by hand
    assert assert_counts_match(ledger) == {(NIGHT + timedelta(days=2), "pending"): (6, 0, 0)}


def test_runs_reads_the_counts_and_says_what_the_rows_say(ledger: Ledger) -> None:
    ledger.plan(NIGHT, APPS)
    claims = claim_all(ledger)
    for claim in claims[:4]:
        ledger.finish_succeeded(claim, "p", f"file:///{claim.app_id}", 10, "aa")
    ledger.finish_failed(claims[4], "p", "boom", 0, 0)
    ledger.close_night(NIGHT)

    [night] = ledger.list_nights(5)

    assert (night["planned"], night["succeeded"], night["failed"], night["running"]) == (
        6,
        4,
        1,
        1,
    )
    assert (night["waiting"], night["pruned"], night["skipped"], night["bytes"]) == (0, 0, 0, 40)
    assert all(isinstance(night[k], int) for k in ("planned", "bytes", "warnings"))


def test_counts_stay_right_when_processes_claim_and_finish_at_once(database_url: str) -> None:
    apps = [f"app-{i:03d}" for i in range(300)]
    setup = connect_ledger(database_url, "backupctl")
    setup.plan(NIGHT, apps)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        led = connect_ledger(database_url, "backupctl", size=2)
        try:
            while claims := led.claim_nightly(NIGHT, f"w{n}", 7, 60, 3):
                for i, claim in enumerate(claims):
                    if (claim.id + i) % 5 == 0:
                        led.finish_failed(claim, f"w{n}", "boom", 3600, 3600)
                    else:
                        led.finish_succeeded(claim, f"w{n}", "file:///x", claim.id, "aa")
        except BaseException as exc:
            errors.append(exc)
        finally:
            led.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        counts = assert_counts_match(setup)
        assert sum(n for n, _, _ in counts.values()) == 300
        assert {status for _, status in counts} == {"succeeded", "failed"}
    finally:
        setup.close()


def test_a_ledger_made_before_0011_gets_counts_that_match_its_rows(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA backupctl")
        conn.execute("SET search_path TO backupctl")
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, text in migrations():
            if version < 11:
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", [version, name])
        # Three nights of rows in every status, an ad-hoc backup, a warning.
        conn.execute(
            """
            INSERT INTO nightly_runs (run_date, status) SELECT d, 'complete'
            FROM generate_series(date '2026-10-01', date '2026-10-03', interval '1 day') AS d;
            INSERT INTO backups (app_id, run_date, trigger, status, attempts, lease_owner,
                                 lease_expires_at, artifact_uri, size_bytes, sha256, warning)
            SELECT 'app-' || a, d, 'nightly', s, 1,
                   CASE WHEN s = 'running' THEN 'p' END,
                   CASE WHEN s = 'running' THEN now() END,
                   CASE WHEN s IN ('succeeded', 'pruned') THEN 'file:///x/' || a END,
                   CASE WHEN s IN ('succeeded', 'pruned') THEN 1000 * a END,
                   CASE WHEN s IN ('succeeded', 'pruned') THEN 'aa' END,
                   CASE WHEN a = 3 AND s = 'succeeded' THEN 'far smaller than usual' END
            FROM generate_series(date '2026-10-01', date '2026-10-03', interval '1 day') AS d,
                 generate_series(1, 14) AS a,
                 LATERAL (SELECT (ARRAY['pending', 'enqueued', 'running', 'succeeded',
                                        'failed', 'pruned', 'skipped'])[1 + (a % 7)] AS s) AS x;
            INSERT INTO backups (app_id, run_date, trigger, status, artifact_uri, size_bytes,
                                 sha256)
            VALUES ('app-1', '2026-10-02', 'adhoc', 'succeeded', 'file:///y', 5, 'bb');
            """
        )
        old_runs = conn.execute(
            "SELECT b.run_date, count(*) AS planned,"
            " count(*) FILTER (WHERE b.status = 'succeeded') AS succeeded,"
            " count(*) FILTER (WHERE b.status = 'pruned') AS pruned,"
            " sum(b.size_bytes) FILTER (WHERE b.status = 'succeeded') AS bytes,"
            " count(*) FILTER (WHERE b.status = 'succeeded' AND b.warning IS NOT NULL)"
            " FROM backups AS b WHERE b.trigger = 'nightly' GROUP BY 1 ORDER BY 1 DESC"
        ).fetchall()

    led = connect_ledger(database_url, "backupctl")  # migrates
    try:
        assert sql(led, "SELECT 1 AS one FROM schema_migrations WHERE version = 11")
        counts = assert_counts_match(led)
        assert len(counts) == 3 * 7
        runs = [
            (n["run_date"], n["planned"], n["succeeded"], n["pruned"], n["bytes"], n["warnings"])
            for n in led.list_nights(10)
        ]
        assert runs == [tuple(r) for r in old_runs]
        # And the triggers keep them from here on.
        [claim] = led.claim_nightly(date(2026, 10, 3), "p", 1, 60, 3)
        led.finish_succeeded(claim, "p", "file:///z", 1, "cc")
        assert_counts_match(led)
    finally:
        led.close()


def test_backups_keeps_a_fifth_of_each_new_page_for_its_rows_updates(ledger: Ledger) -> None:
    # 0012: a night's updates stay on their rows' pages (bench/history.py's claim).
    [row] = sql(ledger, "SELECT reloptions FROM pg_class WHERE oid = 'backups'::regclass")
    assert "fillfactor=80" in row["reloptions"]
