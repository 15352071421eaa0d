"""Operator commands against a real ledger: exact exit codes and messages."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from tests.conftest import Setup, kill_tree, wait_for
from tests.e2e.test_nightly_cli import has_running_row, quick_apps, rows, slow_app

NIGHT = "2026-11-28"
BROKEN = f"""
[[app]]
id = "broken"
kind = "command"
argv = ["{sys.executable}", "-c", "import sys; sys.stderr.write('no space left\\\\n'); sys.exit(2)"]
"""


def tonight() -> str:
    return datetime.now(UTC).date().isoformat()


def test_check_is_ok_for_a_complete_night(setup: Setup) -> None:
    quick_apps(setup)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"OK: night {NIGHT} complete, 3 apps backed up")
    assert lines[1].startswith("  cmd-0: succeeded, last success ")


def test_check_is_critical_when_an_app_failed(setup: Setup) -> None:
    quick_apps(setup)
    setup.write_registry(setup.registry.read_text() + BROKEN)
    assert setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1").returncode == 1

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 2
    assert result.stdout.splitlines()[0].startswith(f"CRITICAL: night {NIGHT}: 1 failed (broken)")
    assert "  broken: failed, never succeeded - failed: " in result.stdout
    assert "no space left" in result.stdout


def test_check_is_critical_for_a_night_that_never_ran_or_was_missed(setup: Setup) -> None:
    quick_apps(setup)
    assert setup.cli("run-nightly", "--date", "2026-11-25").returncode == 0
    assert setup.cli("run-nightly", "--date", "2026-11-27").returncode == 0

    missed = setup.cli("check", "--date", "2026-11-26")
    missing = setup.cli("check", "--date", "2026-11-28")

    assert missed.returncode == 2
    assert missed.stdout.startswith(
        "CRITICAL: night 2026-11-26: missed: no run-nightly ran that night"
    )
    assert missing.returncode == 2
    assert missing.stdout.startswith(
        "CRITICAL: night 2026-11-28: no run recorded: run-nightly did not run"
    )


def test_check_warns_while_the_night_runs_inside_its_window(setup: Setup) -> None:
    gate = setup.root / "gate"  # the backup holds on until the check has looked
    setup.write_registry(slow_app("slow", chunks=3, delay=0.05, gate=gate))
    proc = setup.start("run-nightly")  # tonight, whole-day window
    try:
        wait_for(lambda: rows_of_tonight(setup) == ["running"])
        result = setup.cli("check")
        assert result.returncode == 1, result.stdout
        assert result.stdout.startswith(
            f"WARNING: night {tonight()}: still running inside its window, 1 not done yet"
        )
    finally:
        gate.touch()
        proc.wait(timeout=60)
    done = setup.cli("check")
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith(f"OK: night {tonight()} complete")


def rows_of_tonight(setup: Setup) -> list[str]:
    try:
        found = setup.query(
            "SELECT status FROM backupctl.backups WHERE run_date = %s AND trigger = 'nightly'",
            tonight(),
        )
    except Exception:
        return []
    return [str(r[0]) for r in found]


def test_check_is_critical_for_a_backup_stuck_running_past_its_lease(setup: Setup) -> None:
    setup.write_registry(slow_app("slow", chunks=50, delay=0.1))
    proc = setup.start("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_LEASE="1s")
    wait_for(lambda: rows(setup).get("slow", ("",))[0] == "running")
    kill_tree(proc)
    wait_for(lambda: has_running_row(setup, lease_expired=True))

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 2
    assert result.stdout.startswith(
        f"CRITICAL: night {NIGHT}: 1 stuck running past their lease (slow)"
    )


def test_check_is_critical_when_an_app_has_no_success_within_max_age(setup: Setup) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    time.sleep(1.2)

    result = setup.cli("check", "--date", NIGHT, "--max-age", "1s")

    assert result.returncode == 2
    assert "1 with no success within 1.0s (files-app)" in result.stdout.splitlines()[0]


def test_check_is_unknown_when_the_ledger_cannot_be_read(setup: Setup) -> None:
    quick_apps(setup)
    result = setup.cli(
        "check", BACKUPCTL_DATABASE_URL="postgresql://u:hunter2-secret@127.0.0.1:1/x"
    )
    assert result.returncode == 3
    assert result.stdout.startswith("UNKNOWN: the ledger database is unreachable")
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_check_json_carries_the_schema_version_and_state(setup: Setup) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    doc = json.loads(setup.cli("check", "--date", NIGHT, "--json").stdout)
    assert doc["schema_version"] == 1
    assert (doc["kind"], doc["state"], doc["code"]) == ("check", "OK", 0)
    assert doc["apps"][0]["app_id"] == "files-app"


def test_adhoc_and_nightly_backups_coexist_and_only_the_nightly_completes_the_night(
    setup: Setup,
) -> None:
    quick_apps(setup, n=2)
    adhoc = setup.cli("backup", "cmd-0", "--json")
    assert adhoc.returncode == 0, adhoc.stderr
    doc = json.loads(adhoc.stdout)
    assert (doc["trigger"], doc["status"]) == ("adhoc", "succeeded")
    assert f"/cmd-0/adhoc/cmd-0-{tonight()}-b{doc['backup_id']}-a1.out.zst" in doc["artifact_uri"]

    # The ad-hoc backup alone does not make tonight's night.
    before = setup.cli("check", "--date", tonight())
    assert before.returncode == 2 and "no run recorded" in before.stdout

    nightly = setup.cli("-v", "run-nightly", "--date", tonight())
    assert nightly.returncode == 0, nightly.stderr
    assert "2 backed up now" in nightly.stdout
    triggers = setup.query(
        "SELECT trigger, count(*) FROM backupctl.backups"
        " WHERE app_id = 'cmd-0' GROUP BY 1 ORDER BY 1"
    )
    assert triggers == [("adhoc", 1), ("nightly", 1)]
    assert setup.cli("check", "--date", tonight()).returncode == 0
    assert len([f for f in setup.files() if f.startswith("cmd-0/")]) == 2


def test_backup_of_an_unknown_app_is_a_usage_error(setup: Setup) -> None:
    quick_apps(setup, n=1)
    result = setup.cli("backup", "nope")
    assert result.returncode == 2
    assert f"no app 'nope' in the registry {setup.registry} (apps: files-app)" in result.stderr


def test_a_failed_adhoc_backup_exits_1_and_is_recorded(setup: Setup) -> None:
    setup.write_registry(BROKEN)
    result = setup.cli("backup", "broken")
    assert result.returncode == 1
    assert "ad-hoc backup 1: broken  failed  attempt 1" in result.stdout
    assert setup.query("SELECT trigger, status FROM backupctl.backups") == [("adhoc", "failed")]


def test_runs_shows_each_night_with_counts_and_missed_nights(setup: Setup) -> None:
    quick_apps(setup)
    setup.cli("run-nightly", "--date", "2026-11-25")
    setup.write_registry(setup.registry.read_text() + BROKEN)
    setup.cli("run-nightly", "--date", "2026-11-27", BACKUPCTL_RUN_MAX_ATTEMPTS="1")

    result = setup.cli("runs", "--last", "5")

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "night",
        "status",
        "apps",
        "ok",
        "failed",
        "skipped",
        "waiting",
        "running",
        "duration",
        "bytes",
        "warnings",
        "drills",
    ]
    assert lines[1].split()[:8] == ["2026-11-27", "incomplete", "4", "3", "1", "0", "0", "0"]
    assert lines[2].split()[:2] == ["2026-11-26", "missed"]
    assert lines[3].split()[:4] == ["2026-11-25", "complete", "3", "3"]
    doc = json.loads(setup.cli("runs", "--json").stdout)
    assert [n["status"] for n in doc["nights"]] == ["incomplete", "missed", "complete"]


def test_retry_gives_failed_backups_another_round_and_runs_them(setup: Setup) -> None:
    quick_apps(setup, n=1)
    setup.write_registry(setup.registry.read_text() + BROKEN + BROKEN.replace("broken", "other"))
    env = {"BACKUPCTL_RUN_MAX_ATTEMPTS": "1"}
    assert setup.cli("run-nightly", "--date", NIGHT, **env).returncode == 1

    setup.write_registry(setup.registry.read_text().replace("sys.exit(2)", "print('ok')", 1))
    one = setup.cli("retry", "--date", NIGHT, "--app", "broken", **env)

    assert one.returncode == 0, one.stdout + one.stderr
    assert one.stdout.splitlines()[0] == f"retrying 1 failed backup of {NIGHT}: broken"
    assert "every retried backup succeeded" in one.stdout
    found = rows(setup)
    assert found["broken"][:2] == ("succeeded", 2)
    assert found["other"][:2] == ("failed", 1)  # not asked for: untouched

    again = setup.cli("retry", "--date", NIGHT, "--app", "broken", **env)
    assert again.returncode == 0
    assert again.stdout.strip() == (
        f"nothing to retry: no failed backup for app 'broken' on {NIGHT} (its backup: succeeded)"
    )
    still = setup.cli("retry", "--date", NIGHT, **env)
    assert still.returncode == 1
    assert f"night {NIGHT}: still failed: other" in still.stdout
    assert rows(setup)["other"][:2] == ("failed", 2)


def test_config_check_shows_values_with_their_origin_and_masks_secrets(setup: Setup) -> None:
    config = setup.root / "backupctl.toml"
    config.write_text(
        'timezone = "Europe/Amsterdam"\n[run]\nparallel = 2\n'
        '[monitoring]\nping_url = "https://hc-ping.com/5ecret-uuid"\n'
    )
    quick_apps(setup)
    url = "postgresql://backupctl:pa55word@db.internal/ledger"

    result = setup.cli(
        "--config",
        str(config),
        "config",
        "check",
        BACKUPCTL_DATABASE_URL=url,
        BACKUPCTL_RUN_PARALLEL="6",
    )

    assert result.returncode == 0, result.stderr
    line = {ln.split()[0]: ln.split()[1:] for ln in result.stdout.splitlines()[2:] if ln.strip()}
    assert line["database_url"] == [
        "postgresql://backupctl:***@db.internal/ledger",
        "env",
        "BACKUPCTL_DATABASE_URL",
    ]
    assert line["timezone"] == ["Europe/Amsterdam", "file", str(config)]
    assert line["run.parallel"] == ["6", "env", "BACKUPCTL_RUN_PARALLEL"]
    assert line["run.max_attempts"] == ["3", "default"]
    assert line["monitoring.ping_url"] == ["https://hc-ping.com/***", "file", str(config)]
    assert "pa55word" not in result.stdout and "5ecret-uuid" not in result.stdout
    assert "registry " in result.stdout and "3 apps, 3 enabled" in result.stdout
    assert result.stdout.rstrip().endswith("configuration is valid")


def test_config_check_of_a_bad_configuration_lists_every_problem_and_exits_2(
    setup: Setup,
) -> None:
    config = setup.root / "backupctl.toml"
    config.write_text('colour = "red"\n[run]\nparallel = 0\n')
    result = setup.cli("--config", str(config), "config", "check")
    assert result.returncode == 2
    assert f"{config}: colour: unknown key" in result.stderr
    assert f"{config}: [run] parallel: must be a whole number of at least 1" in result.stderr


def run_in_terminal(setup: Setup, *args: str, **env: str) -> str:
    """Run the CLI with a pseudo-terminal as stdout and return what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backupctl", *args],
        env={**setup.env, "COLUMNS": "120", **env},
        stdout=follower,
        stderr=subprocess.DEVNULL,
        cwd=setup.root,
    )
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(timeout=30)
    os.close(leader)
    return output.decode("utf-8", "replace")


@pytest.mark.parametrize("command", [["status", "--date", NIGHT], ["runs"]])
def test_output_is_plain_when_piped_or_with_no_color_and_a_table_on_a_terminal(
    setup: Setup, command: list[str]
) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    piped = setup.cli(*command).stdout
    no_color = run_in_terminal(setup, *command, NO_COLOR="1")
    terminal = run_in_terminal(setup, *command)

    assert "\x1b[" not in piped and "│" not in piped
    assert "\x1b[" not in no_color and "│" not in no_color
    assert "│" in terminal  # rich's table
