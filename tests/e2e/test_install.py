"""`make install` into a temporary PREFIX, then the installed backupctl run the way cron
runs it: `env -i PATH=/usr/bin:/bin`, a HOME nobody can write, stdout and stderr pipes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from tests.conftest import REPO

CRON_PATH = "/usr/bin:/bin"
NOT_SOURCE = (".git", ".venv", ".demo", "build", "*.egg-info", "__pycache__", ".*_cache")

APPS = """
[[app]]
id = "uploads"
kind = "files"
path = "data"

[[app]]
id = "facts"
kind = "command"
argv = ["uname", "-a"]
"""

FAILING = """
[[app]]
id = "broken"
kind = "command"
argv = ["sh", "-c", "echo 'disk on fire' >&2; exit 3"]
"""


def _scratch(prefix: str) -> Path:
    # Not under pytest's tmp_path: pytest keeps /tmp/pytest-of-<user> at mode 0700, and
    # as root the embedded Postgres runs as its own user, who must reach these folders.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """backupctl installed by `make install` into a PREFIX and BINDIR of its own, from a
    copy of the source (tests in other processes may install at the same time)."""
    if shutil.which("make") is None:
        pytest.skip("make is missing: install it (apt-get install make)")
    root = _scratch("backupctl-install-")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    prefix, bindir = root / "opt" / "backupctl", root / "bin"
    result = subprocess.run(
        ["make", "install", f"PREFIX={prefix}", f"BINDIR={bindir}", f"PYTHON={sys.executable}"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    link = bindir / "backupctl"
    assert link.is_symlink() and link.resolve() == (prefix / "bin" / "backupctl").resolve()
    yield link
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def site() -> Iterator[Path]:
    """A configuration with state_dir, a registry, and a HOME that cannot be written."""
    root = _scratch("backupctl-site-")
    (root / "data").mkdir()
    (root / "data" / "page.txt").write_text("hello\n")
    (root / "apps.toml").write_text(APPS)
    (root / "backupctl.toml").write_text('registry = "apps.toml"\nstate_dir = "state"\n')
    (root / "home-is-a-file").write_text("")
    yield root
    _stop_embedded_servers(root)
    shutil.rmtree(root, ignore_errors=True)


def _stop_embedded_servers(under: Path) -> None:
    # The embedded Postgres stops with its last backupctl process; make sure of it.
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(under) in " ".join(proc.info["cmdline"] or []):
            proc.kill()


def cron(
    binary: Path, site: Path, *args: str, config: str = "backupctl.toml"
) -> tuple[int, str, str]:
    """Run the installed backupctl with nothing of this environment: as cron does."""
    home = site / "home-is-a-file" / "home"
    argv = ["env", "-i", f"PATH={CRON_PATH}", f"HOME={home}", str(binary)]
    result = subprocess.run(
        [*argv, "--config", str(site / config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.timeout(600)
def test_the_installed_command_runs_a_night_under_cron_and_prints_nothing(
    installed: Path, site: Path
) -> None:
    assert cron(installed, site, "run-nightly") == (0, "", "")
    assert cron(installed, site, "run-nightly") == (0, "", "")  # a no-op firing: zero bytes

    code, out, err = cron(installed, site, "check")
    assert code == 0, out + err
    assert out.startswith("OK: night ") and "2 apps backed up" in out.splitlines()[0]
    backups = sorted(p.name for p in (site / "state" / "backups").rglob("*") if p.is_file())
    assert len(backups) == 2, backups
    assert (site / "state" / "pgdata" / "PG_VERSION").is_file()


@pytest.mark.timeout(600)
def test_a_failing_night_under_cron_prints_the_failure_as_text(installed: Path, site: Path) -> None:
    (site / "apps.toml").write_text(APPS + FAILING)
    with (site / "backupctl.toml").open("a") as fh:
        fh.write("[run]\nmax_attempts = 1\n")
    code, out, err = cron(installed, site, "run-nightly", "--date", "2026-11-28")
    assert code == 1, out + err
    assert "broken" in out and "failed" in out and "disk on fire" in out
    assert "1 failed" in out.splitlines()[-1]
    for line in (out + err).splitlines():
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert "uploads" not in out  # successes stay quiet, also on a night that failed


@pytest.mark.timeout(600)
def test_an_unwritable_state_directory_names_it_and_both_fixes(installed: Path, site: Path) -> None:
    (site / "no-state.toml").write_text('registry = "apps.toml"\n')
    code, out, err = cron(installed, site, "run-nightly", config="no-state.toml")
    assert (code, out) == (3, "")
    (line,) = err.splitlines()
    assert str(site / "home-is-a-file" / "home" / ".local" / "state" / "backupctl") in line
    assert "state_dir" in line and "database_url" in line
    assert "log" not in line.split("; set")[0]  # no log file exists to be named
    assert not (site / "state").exists()


def test_crontab_example_holds_a_user_crontab_and_a_cron_d_line_with_absolute_paths() -> None:
    text = (REPO / "crontab.example").read_text()
    entries = [
        line.lstrip("#").split()
        for line in text.splitlines()
        if line.lstrip("# ")[:1].isdigit() and "backupctl" in line
    ]
    user_crontab = [e for e in entries if e[5].startswith("/")]
    cron_d = [e for e in entries if not e[5].startswith("/")]
    assert user_crontab and cron_d, entries
    assert all(e[5] == "/usr/local/bin/backupctl" for e in user_crontab)
    assert all(e[5] == "backup" and e[6] == "/usr/local/bin/backupctl" for e in cron_d)
    assert "MAILTO=" in text and "/etc/cron.d/" in text and "crontab -u backup" in text
