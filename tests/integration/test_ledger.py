"""The ledger's transitions against a real Postgres: each one a fenced compare-and-set."""

from __future__ import annotations

import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from backupctl.errors import LedgerUnavailable
from backupctl.executor import Executor
from backupctl.heartbeat import Heartbeat
from backupctl.ledger import Claim, Ledger, connect_ledger
from backupctl.ledger.queries import migrations
from backupctl.registry import App
from backupctl.registry.lookup import StaticApps
from backupctl.storage import Storages
from tests.integration.conftest import sql

NIGHT = date(2026, 11, 28)
SLOW = str(Path(__file__).parent.parent / "e2e" / "slow_writer.py")


def expire(ledger: Ledger, backup_id: int) -> None:
    """Let a lease run out without waiting for it."""
    sql(
        ledger,
        "UPDATE backups SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        [backup_id],
    )


def statuses(ledger: Ledger) -> dict[str, tuple[str, int]]:
    return {r["app_id"]: (r["status"], r["attempts"]) for r in ledger.night_backups(NIGHT)}


def test_planning_twice_adds_nothing_the_second_time(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a", "b", "c"])
    first = ledger.night_backups(NIGHT)
    ledger.plan(NIGHT, ["a", "b", "c"])
    assert ledger.night_backups(NIGHT) == first
    assert [r["status"] for r in first] == ["pending"] * 3


def test_the_schema_refuses_a_second_nightly_row_for_an_app_and_date(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a"])
    with pytest.raises(LedgerUnavailable, match="duplicate key"):
        sql(
            ledger,
            "INSERT INTO backups (app_id, run_date, trigger, status)"
            " VALUES ('a', %s, 'nightly', 'pending')",
            [NIGHT],
        )


def test_nights_without_a_run_row_are_recorded_as_missed(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a"])
    ledger.plan(NIGHT + timedelta(days=3), ["a"])
    rows = sql(ledger, "SELECT run_date, status FROM nightly_runs ORDER BY 1")
    assert [(r["run_date"], r["status"]) for r in rows] == [
        (NIGHT, "incomplete"),  # a later night was planned while it was still open
        (NIGHT + timedelta(days=1), "missed"),
        (NIGHT + timedelta(days=2), "missed"),
        (NIGHT + timedelta(days=3), "running"),
    ]
    # Running a missed night later backfills it.
    ledger.plan(NIGHT + timedelta(days=1), ["a"])
    assert ledger.get_night(NIGHT + timedelta(days=1))["status"] == "running"  # type: ignore[index]


def test_concurrent_claims_never_hand_out_the_same_backup(database_url: str) -> None:
    apps = [f"app-{i:03d}" for i in range(300)]
    setup = connect_ledger(database_url, "backupctl")
    setup.plan(NIGHT, apps)
    got: list[list[Claim]] = [[] for _ in range(4)]

    def claim_all(slot: int) -> None:
        led = connect_ledger(database_url, "backupctl")
        while batch := led.claim_nightly(NIGHT, f"owner-{slot}", 7, 60, 3):
            got[slot].extend(batch)
        led.close()

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [c.app_id for batch in got for c in batch]
    assert sorted(claimed) == apps
    assert all(c.attempt == 1 for batch in got for c in batch)
    setup.close()


def test_a_process_whose_lease_was_taken_over_cannot_mark_the_row(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a"])
    [stale] = ledger.claim_nightly(NIGHT, "stale", 1, 60, 3)
    assert ledger.claim_nightly(NIGHT, "other", 1, 60, 3) == []  # live lease: left alone
    expire(ledger, stale.id)
    [fresh] = ledger.claim_nightly(NIGHT, "fresh", 1, 60, 3)
    assert fresh.attempt == 2

    assert ledger.heartbeat("stale", [stale.id], 60) == set()
    assert not ledger.finish_succeeded(stale, "stale", "file:///x", 1, "00")
    assert not ledger.finish_failed(stale, "stale", "boom", 0, 0)
    assert not ledger.release(stale, "stale")
    assert statuses(ledger) == {"a": ("running", 2)}

    assert ledger.heartbeat("fresh", [fresh.id], 60) == {(fresh.id, 2)}
    assert ledger.finish_succeeded(fresh, "fresh", "file:///y", 1, "11")
    assert statuses(ledger) == {"a": ("succeeded", 2)}
    # A succeeded row is never claimed again.
    assert ledger.claim_nightly(NIGHT, "late", 1, 60, 3) == []


def test_a_failed_backup_waits_for_its_backoff_and_stops_at_max_attempts(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a"])
    [first] = ledger.claim_nightly(NIGHT, "p", 1, 60, 2)
    assert ledger.finish_failed(first, "p", "boom", retry_wait=3600, retry_wait_max=7200)
    assert ledger.claim_nightly(NIGHT, "p", 1, 60, 2) == []  # backing off
    pending = ledger.night_pending(NIGHT, 2)
    assert pending["retryable"] == 1 and 3500 < pending["next_retry_in"] <= 3600

    sql(ledger, "UPDATE backups SET next_attempt_at = now()")
    [second] = ledger.claim_nightly(NIGHT, "p", 1, 60, 2)
    assert second.attempt == 2
    assert ledger.finish_failed(second, "p", "boom again", retry_wait=0, retry_wait_max=0)
    assert ledger.claim_nightly(NIGHT, "p", 1, 60, 2) == []  # no attempts left
    assert ledger.night_pending(NIGHT, 2)["retryable"] == 0
    assert ledger.close_night(NIGHT).status == "incomplete"  # type: ignore[union-attr]


def test_a_dead_holder_on_its_last_attempt_is_reaped_as_failed(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a"])
    [claim] = ledger.claim_nightly(NIGHT, "dead", 1, 60, 1)
    expire(ledger, claim.id)
    assert ledger.claim_nightly(NIGHT, "next", 1, 60, 1) == []
    [reaped] = ledger.reap_expired(NIGHT, 1)
    assert reaped.id == claim.id
    row = ledger.night_backups(NIGHT)[0]
    assert row["status"] == "failed"
    assert "lease expired" in row["error"]


def test_closing_an_unchanged_night_changes_nothing(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a"])
    [claim] = ledger.claim_nightly(NIGHT, "p", 1, 60, 3)
    ledger.finish_succeeded(claim, "p", "file:///a", 1, "aa")
    assert ledger.close_night(NIGHT).status == "complete"  # type: ignore[union-attr]
    before = ledger.get_night(NIGHT)
    ledger.plan(NIGHT, ["a"])
    ledger.close_night(NIGHT)
    assert ledger.get_night(NIGHT) == before


def test_migrations_run_once_when_many_processes_start_together(database_url: str) -> None:
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            connect_ledger(database_url, "backupctl").close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    led = connect_ledger(database_url, "backupctl")
    versions = sql(led, "SELECT version FROM schema_migrations")
    assert sorted(r["version"] for r in versions) == [v for v, _, _ in migrations()]
    led.close()


def test_an_executor_that_lost_its_lease_removes_its_own_artifact(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Fencing at finish: the heartbeat is too slow to notice, the final CAS refuses."""
    app = App("slow", "command", {"argv": [sys.executable, SLOW, "10", "0.05"]})
    storages = Storages(tmp_path.as_uri())
    ledger.plan(NIGHT, ["slow"])
    [claim] = ledger.claim_nightly(NIGHT, "zombie", 1, 3600, 3)

    def take_over() -> None:
        expire(ledger, claim.id)
        ledger.claim_nightly(NIGHT, "new-owner", 1, 3600, 3)

    timer = threading.Timer(0.2, take_over)
    timer.start()
    with Heartbeat(ledger, "zombie", lease=3600) as heartbeat:
        executor = Executor(ledger, storages, StaticApps([app]), heartbeat, "zombie", 60, 0)
        outcome = executor.run(claim)
    timer.join()

    assert outcome.status == "lost"
    assert statuses(ledger) == {"slow": ("running", 2)}
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("statement", ["claim_nightly", "claim_backup", "start_adhoc"])
def test_a_claim_whose_answer_was_lost_returns_what_it_claimed_and_claims_no_more(
    statement: str,
) -> None:
    """The connection dies right after the claim went out (it committed unseen): the
    connector runs it again, and the ledger hands back the rows the first run took."""
    from bench.servers import PgFaultProxy, RestartablePostgres

    markers = {
        "claim_nightly": b"attempts = b.attempts + 1",
        "claim_backup": b"n.claim_until <= now()",
        "start_adhoc": b"INSERT INTO backups (app_id, run_date, trigger",
    }
    with (
        RestartablePostgres(prefix="backupctl-test-cut-") as pg,
        PgFaultProxy("127.0.0.1", pg.port) as proxy,
    ):
        led = connect_ledger(pg.conninfo(port=proxy.port), "backupctl", outage=10)
        try:
            led.plan(NIGHT, ["a", "b", "c"])
            ids = {r["app_id"]: r["id"] for r in led.night_backups(NIGHT)}
            proxy.cut_after(markers[statement])
            if statement == "claim_nightly":
                got = [c.app_id for c in led.claim_nightly(NIGHT, "p", 2, 60, 3)]
                assert sorted(got) == ["a", "b"]
            elif statement == "claim_backup":
                claim = led.claim_backup(ids["b"], "b", NIGHT, "p", 60, 3)
                assert claim is not None and claim.attempt == 1
            else:
                claim = led.start_adhoc("a", NIGHT, "p", 60)
                assert claim.trigger == "adhoc"
            assert proxy.cuts == 1
            found = sql(led, "SELECT app_id, trigger, status, attempts FROM backups ORDER BY id")
        finally:
            led.close()
    running = [
        (r["app_id"], r["trigger"], r["attempts"]) for r in found if r["status"] == "running"
    ]
    expected = {
        "claim_nightly": [("a", "nightly", 1), ("b", "nightly", 1)],
        "claim_backup": [("b", "nightly", 1)],
        "start_adhoc": [("a", "adhoc", 1)],
    }
    assert running == expected[statement]


def test_a_finish_run_again_after_it_committed_still_reports_success(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a", "b"])
    a, b = ledger.claim_nightly(NIGHT, "p", 2, 60, 3)
    assert ledger.finish_succeeded(a, "p", "file:///a1", 1, "aa")
    assert ledger.finish_succeeded(a, "p", "file:///a1", 1, "aa")  # the retry: ours
    assert not ledger.finish_succeeded(a, "p", "file:///other", 1, "bb")  # not ours
    assert ledger.finish_failed(b, "p", "boom", 0, 0)
    assert ledger.finish_failed(b, "p", "boom", 0, 0)


def test_the_retry_wait_doubles_up_to_retry_wait_max(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a"])
    sql(ledger, "UPDATE backups SET attempts = 11")  # the 12th attempt: 30s * 2^11 = 17h
    [claim] = ledger.claim_nightly(NIGHT, "p", 1, 60, 20)
    assert ledger.finish_failed(claim, "p", "boom", retry_wait=30, retry_wait_max=600)
    wait = ledger.night_pending(NIGHT, 20)["next_retry_in"]
    assert 590 < wait <= 600


def test_planning_skips_the_open_rows_of_apps_no_longer_listed(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a", "b", "c", "d"])
    [held] = ledger.claim_nightly(NIGHT, "p", 1, 60, 3, app_id="c")
    [done] = ledger.claim_nightly(NIGHT, "p", 1, 60, 3, app_id="d")
    ledger.finish_succeeded(done, "p", "file:///d", 1, "dd")

    skipped = ledger.plan(NIGHT, ["a"])

    assert [c.app_id for c in skipped] == ["b"]  # c runs under a live lease, d is done
    assert statuses(ledger) == {
        "a": ("pending", 0),
        "b": ("skipped", 0),
        "c": ("running", 1),
        "d": ("succeeded", 1),
    }
    ledger.finish_succeeded(held, "p", "file:///c", 1, "cc")
    [claim] = ledger.claim_nightly(NIGHT, "p", 1, 60, 3)
    ledger.finish_succeeded(claim, "p", "file:///a", 1, "aa")
    night = ledger.close_night(NIGHT)
    assert night is not None and (night.status, night.skipped) == ("complete", 1)


def test_the_guard_compares_with_the_latest_earlier_planned_night(ledger: Ledger) -> None:
    ledger.plan(NIGHT, ["a", "b", "c"])
    ledger.plan(NIGHT + timedelta(days=2), ["a", "b", "c", "d"])  # NIGHT+1 is missed

    earlier = ledger.earlier_night(NIGHT + timedelta(days=3), ["a"])

    assert earlier is not None
    assert (earlier.run_date, earlier.planned, earlier.missing) == (
        NIGHT + timedelta(days=2),
        4,
        3,
    )
    assert earlier.missing_examples == ["b", "c", "d"]
    assert ledger.earlier_night(NIGHT, ["a"]) is None
