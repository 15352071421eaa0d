"""run-nightly end to end: the real CLI in subprocesses against a real Postgres."""

from __future__ import annotations

import hashlib
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupctl.durations import parse_window
from tests.conftest import Setup, kill_tree, wait_for

NIGHT = "2026-11-28"
SLOW = str(Path(__file__).with_name("slow_writer.py"))


def slow_app(app_id: str, chunks: int = 20, delay: float = 0.1, gate: Path | None = None) -> str:
    extra = f', "-", "{gate}"' if gate else ""
    return f"""
[[app]]
id = "{app_id}"
kind = "command"
argv = ["{sys.executable}", "{SLOW}", "{chunks}", "{delay}"{extra}]
"""


def quick_apps(setup: Setup, n: int = 3) -> None:
    data = setup.root / "data"
    data.mkdir(exist_ok=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub").mkdir(exist_ok=True)
    (data / "sub" / "b.txt").write_text("beta\n")
    text = f"""
[[app]]
id = "files-app"
kind = "files"
path = "{data}"
"""
    for i in range(n - 1):
        text += f"""
[[app]]
id = "cmd-{i}"
kind = "command"
argv = ["{sys.executable}", "-c", "print('hello {i}' * 100)"]
"""
    setup.write_registry(text)


def ledger_snapshot(setup: Setup) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    backups = setup.query("SELECT * FROM backupctl.backups ORDER BY id")
    nights = setup.query("SELECT * FROM backupctl.nightly_runs ORDER BY run_date")
    return backups, nights


def storage_snapshot(setup: Setup) -> dict[str, str]:
    return {
        name: hashlib.sha256((setup.storage / name).read_bytes()).hexdigest()
        for name in setup.files()
    }


def has_running_row(setup: Setup, lease_expired: bool) -> bool:
    """Whether some row is running with its lease expired (or, with False, still live)."""
    op = "<" if lease_expired else ">"
    sql = (
        f"SELECT 1 FROM backupctl.backups WHERE status = 'running' AND lease_expires_at {op} now()"
    )
    return bool(setup.query(sql))


def rows(setup: Setup) -> dict[str, tuple[object, ...]]:
    """app_id -> (status, attempts, artifact_uri, sha256, size_bytes) of the night."""
    if not _ledger_tables(setup):
        return {}
    found = setup.query(
        "SELECT app_id, status, attempts, artifact_uri, sha256, size_bytes, error"
        " FROM backupctl.backups WHERE run_date = %s AND trigger = 'nightly'",
        NIGHT,
    )
    return {str(r[0]): r[1:] for r in found}


def assert_one_artifact_per_app(setup: Setup, app_ids: list[str]) -> None:
    """Invariant 1 and 3: one succeeded row per app, exactly its artifact, no temp files."""
    found = rows(setup)
    files = setup.files()
    assert not [f for f in files if f.endswith(".tmp")], files
    for app_id in app_ids:
        status, _attempts, uri, sha, size, _err = found[app_id]
        assert status == "succeeded", (app_id, found[app_id])
        mine = [f for f in files if f.startswith(f"{app_id}/")]
        assert len(mine) == 1, (app_id, mine)
        assert isinstance(uri, str) and uri.endswith(mine[0])
        data = (setup.storage / mine[0]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha
        assert len(data) == size


def test_a_rerun_of_a_completed_night_changes_neither_ledger_nor_storage(setup: Setup) -> None:
    quick_apps(setup)
    first = setup.cli("-v", "run-nightly", "--date", NIGHT)
    assert first.returncode == 0, first.stderr
    assert "3 backed up now" in first.stdout
    before = ledger_snapshot(setup), storage_snapshot(setup)
    assert len(before[1]) == 3

    again = setup.cli("-v", "run-nightly", "--date", NIGHT)

    assert again.returncode == 0, again.stderr
    assert f"night {NIGHT}: 0 backed up now, 3 already done" in again.stdout
    assert (ledger_snapshot(setup), storage_snapshot(setup)) == before
    assert_one_artifact_per_app(setup, ["files-app", "cmd-0", "cmd-1"])


def test_one_failing_app_fails_alone_and_a_rerun_retries_it_while_attempts_remain(
    setup: Setup,
) -> None:
    quick_apps(setup)
    broken = f"""
[[app]]
id = "broken"
kind = "command"
argv = ["{sys.executable}", "-c", "import sys; sys.stderr.write('disk on fire\\\\n'); sys.exit(3)"]
"""
    setup.write_registry(setup.registry.read_text() + broken)

    first = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")

    assert first.returncode == 1, first.stderr
    found = rows(setup)
    assert found["broken"][:2] == ("failed", 1)
    assert "exited with status 3: disk on fire" in str(found["broken"][5])
    assert all(found[a][0] == "succeeded" for a in ("files-app", "cmd-0", "cmd-1"))
    assert "1 failed" in first.stdout

    # No attempts left: a rerun does not try again, and still says the night failed.
    second = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")
    assert second.returncode == 1
    assert rows(setup)["broken"][:2] == ("failed", 1)

    # Fixed, and with an attempt left: the rerun retries it and the night completes.
    setup.write_registry(setup.registry.read_text().replace("sys.exit(3)", "print('ok')"))
    third = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="2")
    assert third.returncode == 0, third.stdout + third.stderr
    assert rows(setup)["broken"][:2] == ("succeeded", 2)
    assert_one_artifact_per_app(setup, ["files-app", "cmd-0", "cmd-1", "broken"])
    night = setup.query("SELECT status FROM backupctl.nightly_runs WHERE run_date = %s", NIGHT)
    assert night == [("complete",)]


def test_a_flaky_backup_is_retried_within_the_run(setup: Setup) -> None:
    marker = setup.root / "tried-once"
    script = (
        f"import pathlib, sys; p = pathlib.Path({str(marker)!r});"
        " p.exists() or sys.exit(p.touch() or 1); print('data')"
    )
    setup.write_registry(f"""
[[app]]
id = "flaky"
kind = "command"
argv = ["{sys.executable}", "-c", "{script}"]
""")
    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(setup)["flaky"][:2] == ("succeeded", 2)
    assert_one_artifact_per_app(setup, ["flaky"])


def test_sigkill_mid_night_then_a_rerun_after_the_lease_finishes_the_night(setup: Setup) -> None:
    apps = [f"slow-{i}" for i in range(4)]
    setup.write_registry("".join(slow_app(a, chunks=15, delay=0.1) for a in apps))
    env = {"BACKUPCTL_RUN_LEASE": "1s", "BACKUPCTL_RUN_PARALLEL": "2"}

    proc = setup.start("run-nightly", "--date", NIGHT, **env)
    # Kill it while a backup is half-written.
    wait_for(lambda: any(f.endswith(".tmp") for f in setup.files()))
    kill_tree(proc)
    assert any(f.endswith(".tmp") for f in setup.files())
    assert any(r[0] == "running" for r in rows(setup).values())

    wait_for(lambda: not has_running_row(setup, lease_expired=False))
    rerun = setup.cli("run-nightly", "--date", NIGHT, **env)

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_one_artifact_per_app(setup, apps)


def test_a_rerun_leaves_backups_held_under_a_live_lease_alone_and_says_so(setup: Setup) -> None:
    setup.write_registry(slow_app("slow", chunks=40, delay=0.1))
    proc = setup.start("-v", "run-nightly", "--date", NIGHT, BACKUPCTL_RUN_LEASE="30s")
    try:
        wait_for(lambda: rows(setup).get("slow", ("",))[0] == "running")
        other = setup.cli("-v", "run-nightly", "--date", NIGHT)
        assert other.returncode == 0, other.stderr
        assert "1 running in another process (left alone)" in other.stdout
        assert rows(setup)["slow"][1] == 1
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert_one_artifact_per_app(setup, ["slow"])


def test_three_concurrent_runs_back_each_app_up_exactly_once(setup: Setup) -> None:
    apps = [f"app-{i}" for i in range(8)]
    gate = setup.root / "gate"
    setup.write_registry("".join(slow_app(a, chunks=3, delay=0.05, gate=gate) for a in apps))

    procs = [
        setup.start("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_PARALLEL="2") for _ in range(3)
    ]
    try:
        # No backup writes a byte until all three runs hold backups at the same time.
        wait_for(lambda: _holders(setup) == 3, timeout=60)
    finally:
        gate.touch()
    for proc in procs:
        proc.wait(timeout=90)

    assert [p.returncode for p in procs] == [0, 0, 0]
    found = rows(setup)
    assert sorted(found) == apps
    assert {a: found[a][1] for a in apps} == dict.fromkeys(apps, 1)
    assert_one_artifact_per_app(setup, apps)
    invocations = setup.query(
        "SELECT count(*) FROM backupctl.invocations WHERE command = 'run-nightly' AND exit_code = 0"
    )
    assert invocations == [(3,)]


def _holders(setup: Setup) -> int:
    """How many processes hold running backups right now."""
    if not _ledger_tables(setup):
        return 0
    found = setup.query(
        "SELECT count(DISTINCT lease_owner) FROM backupctl.backups WHERE status = 'running'"
    )
    return int(str(found[0][0]))


def test_a_process_stalled_past_its_lease_cannot_mark_the_row_or_leave_an_artifact(
    setup: Setup,
) -> None:
    setup.write_registry(slow_app("slow", chunks=20, delay=0.1))
    env = {"BACKUPCTL_RUN_LEASE": "1s"}
    zombie = setup.start("-v", "run-nightly", "--date", NIGHT, **env)
    try:
        wait_for(lambda: any(f.endswith(".tmp") for f in setup.files()))
        zombie.send_signal(signal.SIGSTOP)
        wait_for(lambda: has_running_row(setup, lease_expired=True))
        takeover = setup.cli("-v", "run-nightly", "--date", NIGHT, **env)
        assert takeover.returncode == 0, takeover.stdout + takeover.stderr
        status, attempts, uri, *_ = rows(setup)["slow"]
        assert (status, attempts) == ("succeeded", 2)
        assert isinstance(uri, str) and uri.endswith("-a2.out.zst")
    finally:
        zombie.send_signal(signal.SIGCONT)
    out, err = zombie.communicate(timeout=60)

    assert "lost" in out, out + err
    after = rows(setup)["slow"]
    assert after[:3] == (status, attempts, uri)
    assert_one_artifact_per_app(setup, ["slow"])


MALFORMED_REGISTRIES = {
    "duplicate id": (
        '[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\n' * 2,
        "duplicate id 'a'",
    ),
    "unknown kind": ('[[app]]\nid = "a"\nkind = "ftp"\n', "unknown kind 'ftp'"),
    "bad id": ('[[app]]\nid = "../etc"\nkind = "command"\nargv = ["true"]\n', "is not valid"),
    "unknown field": (
        '[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\nshell = "x"\n',
        "unknown field 'shell'",
    ),
    "missing field": ('[[app]]\nid = "a"\nkind = "files"\n', "missing field 'path'"),
    "not toml": ('[[app]]\nid = "a\n', "not valid TOML"),
}


def _ledger_tables(setup: Setup) -> int:
    found = setup.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'backupctl'"
    )
    return int(str(found[0][0]))


@pytest.mark.parametrize("case", sorted(MALFORMED_REGISTRIES))
def test_a_malformed_registry_exits_2_naming_the_file_and_leaves_the_ledger_untouched(
    setup: Setup, case: str
) -> None:
    text, message = MALFORMED_REGISTRIES[case]
    setup.registry.write_text(text)

    result = setup.cli("run-nightly", "--date", NIGHT)

    assert result.returncode == 2
    assert str(setup.registry) in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert _ledger_tables(setup) == 0
    assert setup.files() == []


MALFORMED_CONFIGS = {
    "unknown key": ("colour = 'red'\n", "colour: unknown key"),
    "bad parallel": ("[run]\nparallel = 0\n", "[run] parallel: must be a whole number"),
    "bad duration": ("[run]\ntimeout = 'soon'\n", "[run] timeout: 'soon' is not a duration"),
    "bad timezone": ("timezone = 'Mars/Olympus'\n", "unknown timezone 'Mars/Olympus'"),
    "not toml": ("[run\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CONFIGS))
def test_a_malformed_config_exits_2_naming_the_file_and_leaves_the_ledger_untouched(
    setup: Setup, case: str
) -> None:
    quick_apps(setup)
    text, message = MALFORMED_CONFIGS[case]
    config = setup.root / "backupctl.toml"
    config.write_text(text)

    result = setup.cli("--config", str(config), "run-nightly", "--date", NIGHT)

    assert result.returncode == 2
    assert str(config) in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert _ledger_tables(setup) == 0


def test_an_unreachable_database_exits_3_with_one_line_and_no_password(setup: Setup) -> None:
    quick_apps(setup)
    url = "postgresql://backupctl:canary-s3cret-pw@127.0.0.1:1/ledger"

    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_DATABASE_URL=url)

    assert result.returncode == 3
    assert result.stderr.count("\n") == 1, result.stderr
    assert "ledger database is unreachable" in result.stderr
    assert "postgresql://backupctl:***@127.0.0.1:1/ledger" in result.stderr
    assert "canary-s3cret-pw" not in result.stdout + result.stderr
    assert setup.files() == []


def test_outside_the_window_run_nightly_does_nothing_and_says_so(setup: Setup) -> None:
    quick_apps(setup)
    now = datetime.now(UTC)
    start = (now + timedelta(hours=2)).strftime("%H:00")
    end = (now + timedelta(hours=3)).strftime("%H:00")

    result = setup.cli("-v", "run-nightly", BACKUPCTL_RUN_WINDOW=f"{start}-{end}")

    assert result.returncode == 0, result.stderr
    shown = parse_window(f"{start}-{end}")  # a window ending at midnight shows as 24:00
    assert f"outside the backup window {shown} (UTC); nothing to do" in result.stdout
    assert _ledger_tables(setup) == 0


def test_inside_the_window_run_nightly_backs_up_tonight(setup: Setup) -> None:
    quick_apps(setup)
    result = setup.cli("-v", "run-nightly")
    assert result.returncode == 0, result.stderr
    tonight = datetime.now(UTC).date()
    if datetime.now(UTC).date() != tonight:  # ran across midnight UTC
        time.sleep(0)
    assert f"night {tonight}: 3 backed up now" in result.stdout
