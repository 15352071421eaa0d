"""verify re-reads artifacts; prune applies retention. The real CLI, a real ledger."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.conftest import Setup
from tests.e2e.test_nightly_cli import quick_apps

NIGHTS = [(date(2026, 11, 1) + timedelta(days=n)).isoformat() for n in range(6)]


def nightly_rows(setup: Setup) -> list[tuple[object, ...]]:
    return setup.query(
        "SELECT app_id, run_date::text, status, artifact_uri FROM backupctl.backups"
        " WHERE trigger = 'nightly' ORDER BY app_id, run_date"
    )


def test_verify_finds_a_damaged_and_a_missing_artifact(setup: Setup) -> None:
    quick_apps(setup)
    assert setup.cli("run-nightly", "--date", NIGHTS[0]).returncode == 0

    intact = setup.cli("verify", "--date", NIGHTS[0])
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.splitlines()[-1] == "verified 3 backups: all intact"

    uris = {str(r[0]): str(r[3]) for r in nightly_rows(setup)}
    damaged = Path(uris["cmd-0"].removeprefix("file://"))
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\0")
    Path(uris["cmd-1"].removeprefix("file://")).unlink()

    result = setup.cli("verify")
    assert result.returncode == 1
    assert "cmd-0  2026-11-01  nightly" in result.stdout and "checksum mismatch" in result.stdout
    assert "cmd-1" in result.stdout and "missing from storage" in result.stdout
    assert result.stdout.splitlines()[-1] == "verified 3 backups: 2 FAILED"


def test_prune_keeps_what_retention_says_and_deletes_the_rest(setup: Setup) -> None:
    quick_apps(setup, n=2)
    for night in NIGHTS:
        assert setup.cli("run-nightly", "--date", night).returncode == 0
    assert setup.cli("backup", "cmd-0").returncode == 0  # ad hoc: never pruned
    policy = {
        "BACKUPCTL_RETENTION_KEEP_DAILY": "2",
        "BACKUPCTL_RETENTION_KEEP_WEEKLY": "0",
        "BACKUPCTL_RETENTION_KEEP_MONTHLY": "0",
    }
    before = setup.files()

    dry = setup.cli("prune", "--dry-run", **policy)
    assert dry.returncode == 0
    assert dry.stdout.splitlines()[-1] == "would prune 8 backups, kept 4"
    assert setup.files() == before

    result = setup.cli("prune", **policy)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "pruned 8 backups, kept 4"
    rows = nightly_rows(setup)
    kept = sorted({str(r[1]) for r in rows if r[2] == "succeeded"})
    assert kept == NIGHTS[-2:]
    assert {r[2] for r in rows if str(r[1]) not in kept} == {"pruned"}
    remaining = setup.files()
    assert len(remaining) == 4 + 1
    assert any("/adhoc/" in f for f in remaining)
    assert setup.cli("verify", "--all").returncode == 0  # pruned rows are not verified
    again = setup.cli("prune", **policy)
    assert again.stdout.splitlines()[-1] == "pruned 0 backups, kept 4"


def test_prune_refuses_a_policy_that_keeps_nothing(setup: Setup) -> None:
    quick_apps(setup, n=1)
    result = setup.cli(
        "prune",
        BACKUPCTL_RETENTION_KEEP_DAILY="0",
        BACKUPCTL_RETENTION_KEEP_WEEKLY="0",
        BACKUPCTL_RETENTION_KEEP_MONTHLY="0",
    )
    assert result.returncode == 2
    assert "keeps nothing" in result.stderr
