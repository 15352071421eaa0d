"""Hooks: an app's `before` and `after` programs around its dump, through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import Setup, wait_for

NIGHT = "2026-11-28"
ONE_TRY = {"BACKUPCTL_RUN_MAX_ATTEMPTS": "1"}


def step(log: Path, word: str, code: int = 0, stderr: str = "") -> list[str]:
    """An argv that appends `word` (and the status variable, if set) to `log`, says
    `stderr` on its stderr and exits with `code`."""
    script = (
        "import os, sys\n"
        f"line = {word!r} + ' ' + os.environ.get('BACKUPCTL_BACKUP_STATUS', '-')\n"
        f"open({str(log)!r}, 'a').write(line.strip() + '\\n')\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({code})\n"
    )
    return [sys.executable, "-c", script]


def dump(log: Path, code: int = 0) -> list[str]:
    """A command app's argv: logs 'dump -', writes some data, exits with `code`."""
    script = (
        f"open({str(log)!r}, 'a').write('dump -\\n')\n"
        "import sys; sys.stdout.write('data\\n' * 100)\n"
        f"sys.exit({code})\n"
    )
    return [sys.executable, "-c", script]


def registry(setup: Setup, argv: list[str], **hooks: list[str]) -> None:
    lines = [f"{name} = {json.dumps(value)}" for name, value in hooks.items()]
    setup.write_registry(
        '[[app]]\nid = "shop"\nkind = "command"\n'
        f"argv = {json.dumps(argv)}\n" + "\n".join(lines) + "\n"
    )


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_before_runs_before_the_dump_and_after_afterwards_with_the_status(
    setup: Setup,
) -> None:
    log = setup.root / "order.log"
    registry(setup, dump(log), before=step(log, "before"), after=step(log, "after"))

    proc = setup.cli("run-nightly", "--date", NIGHT)

    assert proc.returncode == 0, proc.stderr
    assert logged(log) == ["before -", "dump -", "after succeeded"]
    assert setup.query("SELECT status, error, hook_warning FROM backupctl.backups") == [
        ("succeeded", None, None)
    ]


def test_a_failed_dump_runs_after_with_status_failed(setup: Setup) -> None:
    log = setup.root / "order.log"
    registry(setup, dump(log, code=4), before=step(log, "before"), after=step(log, "after"))

    proc = setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY)

    assert proc.returncode == 1
    assert logged(log) == ["before -", "dump -", "after failed"]
    assert setup.query("SELECT status, error FROM backupctl.backups") == [
        ("failed", "command exited with status 4")
    ]


def test_a_failing_before_fails_the_backup_with_its_stderr_and_skips_the_dump(
    setup: Setup,
) -> None:
    log = setup.root / "order.log"
    before = step(log, "before", code=3, stderr="starting\nqueue busy: 12 jobs running\n")
    registry(setup, dump(log), before=before, after=step(log, "after"))

    proc = setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY)

    assert proc.returncode == 1
    # The dump never ran; after did, told the backup failed (to undo a partial quiesce).
    assert logged(log) == ["before -", "after failed"]
    [(status, error)] = setup.query("SELECT status, error FROM backupctl.backups")
    assert status == "failed"
    assert error == "before hook exited with status 3: starting\nqueue busy: 12 jobs running"
    assert setup.files() == []
    shown = setup.cli("status", "--date", NIGHT)
    assert "before hook exited with status 3: starting; queue busy: 12 jobs running" in (
        shown.stdout
    )


def test_a_failing_after_leaves_the_backup_succeeded_with_a_warning_check_sees(
    setup: Setup,
) -> None:
    log = setup.root / "order.log"
    after = step(log, "after", code=1, stderr="cannot resume the queue")
    registry(setup, dump(log), after=after)

    proc = setup.cli("run-nightly", "--date", NIGHT)

    assert proc.returncode == 0, proc.stderr  # the backup itself succeeded
    assert "after hook exited with status 1: cannot resume the queue" in proc.stderr
    assert logged(log) == ["dump -", "after succeeded"]
    assert setup.query("SELECT status, hook_warning FROM backupctl.backups") == [
        ("succeeded", "after hook exited with status 1: cannot resume the queue")
    ]
    shown = setup.cli("status", "--date", NIGHT)
    assert "warning: after hook exited with status 1: cannot resume the queue" in shown.stdout
    doc = json.loads(setup.cli("status", "--date", NIGHT, "--json").stdout)
    [row] = doc["backups"]
    assert row["hook_warning"] == "after hook exited with status 1: cannot resume the queue"
    check = setup.cli("check", "--date", NIGHT, "--max-age", "3650d")
    assert check.returncode == 1, check.stdout  # WARNING
    assert (
        "1 backup whose after hook failed (shop: after hook exited with status 1: "
        "cannot resume the queue)" in check.stdout
    )


def test_a_before_that_outlasts_the_timeout_is_killed_with_its_children(
    setup: Setup,
) -> None:
    log = setup.root / "order.log"
    pids = setup.root / "pids"
    # sh starts a grandchild that would outlive a kill of sh alone.
    hang = ["sh", "-c", f"sleep 300 & echo $$ $! > {pids}; wait"]
    registry(setup, dump(log), before=hang, after=step(log, "after"))

    proc = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_TIMEOUT="2s", **ONE_TRY)

    assert proc.returncode == 1
    [(status, error)] = setup.query("SELECT status, error FROM backupctl.backups")
    assert (status, error) == ("failed", "before hook: timed out after 2s")
    assert logged(log) == ["after failed"]  # the dump never ran; after did
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda pid=pid: _gone(pid))


def test_hooks_get_the_environment_of_a_backup_program(setup: Setup) -> None:
    seen = setup.root / "env.json"
    show = [
        sys.executable,
        "-c",
        f"import json, os; json.dump(sorted(os.environ), open({str(seen)!r}, 'w'))",
    ]
    registry(setup, dump(setup.root / "order.log"), after=show)
    setup.write_registry(
        setup.registry.read_text()
        + '\n[[app]]\nid = "db"\nkind = "postgres"\ndsn_env = "DB_DSN"\nenabled = false\n'
    )

    proc = setup.cli("run-nightly", "--date", NIGHT, DB_DSN="postgresql://u:pw@h/d")

    assert proc.returncode == 0, proc.stderr
    names = json.loads(seen.read_text())
    assert [n for n in names if n.startswith("BACKUPCTL_")] == ["BACKUPCTL_BACKUP_STATUS"]
    assert "DB_DSN" not in names and "PGPASSWORD" not in names
    assert "PATH" in names


def test_config_check_reports_a_hook_program_that_is_not_there(setup: Setup) -> None:
    missing = setup.root / "quiesce"
    registry(setup, ["true"], before=[str(missing), "--app", "shop"], after=["true"])

    proc = setup.cli("config", "check")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"app 'shop': before: program {missing} does not exist" in proc.stdout


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] in ("Z", "X")
