"""deploy/systemd/: the units pass `systemd-analyze verify` without a word, their
hardening scores well in `systemd-analyze security`, and they say what the README's
production walk-through and backupctl's own defaults need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backupctl.config import KEYS
from tests.conftest import REPO
from tests.tools import need_tool

FOLDER = REPO / "deploy" / "systemd"
UNITS = ("backupctl-nightly.service", "backupctl-nightly.timer", "backupctl-worker.service")
SERVICES = ("backupctl-nightly.service", "backupctl-worker.service")
INSTALLED = "/usr/local/bin/backupctl"  # where `make install` links it (BINDIR)
NOT_INSTALLED = f"Command {INSTALLED} is not executable: No such file or directory"
DEFAULT_GRACE = next(k.default for k in KEYS if k.dotted == "queue.grace")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "read-only",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
    "StateDirectory": "backupctl",
}


def analyze() -> str:
    return need_tool("systemd-analyze", "the systemd package (apt-get install systemd)")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def settings(unit: str) -> dict[str, list[str]]:
    """Key -> every value it is given in `unit` (a key may repeat: ReadWritePaths)."""
    found: dict[str, list[str]] = {}
    for line in (FOLDER / unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def only(unit: str, key: str) -> str:
    [value] = settings(unit)[key]
    return value


def seconds(timespan: str) -> float:
    """A systemd time span ("6min", "90s") in seconds, as systemd itself reads it."""
    out = run("timespan", timespan)
    assert out.returncode == 0, out.stderr
    [micro] = [line.split(":", 1)[1] for line in out.stdout.splitlines() if "μs:" in line]
    return int(micro) / 1e6


@pytest.fixture
def copies(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointed at this checkout's backupctl: verify checks that
    the program exists, and the test machine has no `make install`."""
    real = Path(sys.executable).parent / "backupctl"
    assert real.is_file(), real
    made = []
    for unit in UNITS:
        text = (FOLDER / unit).read_text()
        assert unit.endswith(".timer") or f"ExecStart={INSTALLED} " in text, unit
        (tmp_path / unit).write_text(text.replace(INSTALLED, str(real)))
        made.append(tmp_path / unit)
    return made


def test_systemd_analyze_verify_says_nothing_about_the_units(copies: list[Path]) -> None:
    # verify exits 0 on an unknown key or a value it cannot parse, and says so: any
    # line at all is a fault.
    out = run("verify", "--man=no", *map(str, copies))

    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout + out.stderr == ""


def test_the_units_as_shipped_lack_only_the_installed_program() -> None:
    out = run("verify", "--man=no", *(str(FOLDER / unit) for unit in UNITS))

    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    if Path(INSTALLED).exists():  # a machine with backupctl installed
        assert lines == [], lines
    else:
        assert lines == [f"{unit}: {NOT_INSTALLED}" for unit in SERVICES], lines


@pytest.mark.parametrize("unit", SERVICES)
def test_the_hardening_rates_ok_in_systemd_analyze_security(copies: list[Path], unit: str) -> None:
    # Exposure 0-10, lower is better; above 2.5 would be "MEDIUM".
    out = run("security", "--offline=true", "--threshold=25", str(copies[UNITS.index(unit)]))

    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "Overall exposure level" in out.stdout


@pytest.mark.parametrize("unit", SERVICES)
def test_each_service_runs_the_installed_backupctl_as_backup_hardened(unit: str) -> None:
    found = settings(unit)
    assert only(unit, "User") == "backup" and only(unit, "Group") == "backup"
    command = "run-nightly" if "nightly" in unit else "worker"
    # As crontab.example runs it: the installed link, the config in /etc/backupctl.
    assert only(unit, "ExecStart") == (
        f"{INSTALLED} --config /etc/backupctl/backupctl.toml {command}"
    )
    assert f"BINDIR ?= {Path(INSTALLED).parent}" in (REPO / "Makefile").read_text()
    assert (
        f"{INSTALLED} --config /etc/backupctl/backupctl.toml run-nightly"
        in (REPO / "crontab.example").read_text()
    )
    for key, value in HARDENING.items():
        assert found[key] == [value], key
    # StateDirectory=backupctl is the README's state_dir; the storage folder of its
    # example, and the metrics folder, stay writable (when they exist).
    readme = (REPO / "README.md").read_text()
    assert 'state_dir = "/var/lib/backupctl"' in readme
    assert 'storage   = "file:///srv/backups/backupctl"' in readme
    assert found["ReadWritePaths"] == [
        "-/srv/backups/backupctl",
        "-/var/lib/node_exporter/textfile_collector",
    ]
    # SIGTERM to backupctl alone: it stops what it runs (pg_dump) itself.
    assert only(unit, "KillMode") == "mixed"
    assert only(unit, "EnvironmentFile") == "-/etc/backupctl/backupctl.env"


def test_the_timer_starts_the_nightly_run_every_hour_catching_up_and_spread() -> None:
    unit = "backupctl-nightly.timer"
    assert only(unit, "Unit") == "backupctl-nightly.service"
    assert only(unit, "Persistent") == "true"
    assert 0 < seconds(only(unit, "RandomizedDelaySec")) < 3600
    calendar = run("calendar", only(unit, "OnCalendar"), "--iterations=2")
    assert calendar.returncode == 0, calendar.stderr
    assert "Normalized form: *-*-* *:00:00" in calendar.stdout
    assert only(unit, "WantedBy") == "timers.target"
    assert only("backupctl-nightly.service", "Type") == "oneshot"


def test_the_worker_restarts_on_failure_and_outlasts_its_grace() -> None:
    unit = "backupctl-worker.service"
    assert only(unit, "Restart") == "on-failure"
    assert only(unit, "RestartPreventExitStatus") == "2"  # a config error stays one
    assert seconds(only(unit, "TimeoutStopSec")) > DEFAULT_GRACE
