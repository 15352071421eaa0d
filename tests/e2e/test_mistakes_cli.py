"""Mistakes are not successes: `retry` of a night or an app the ledger has no backup
for is exit 2, and `config check` names every folder and program a backup would
miss now (exit 1). The real CLI, real files and permissions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Setup
from tests.e2e.test_nightly_cli import NIGHT, quick_apps

FAILING = f"""
[[app]]
id = "broken"
kind = "command"
argv = ["{sys.executable}", "-c", "import sys; sys.exit(3)"]
"""
ONE_TRY = {"BACKUPCTL_RUN_MAX_ATTEMPTS": "1"}


def _invocations(setup: Setup) -> int:
    return int(str(setup.query("SELECT count(*) FROM backupctl.invocations")[0][0]))


# -- retry: a night or an app that is not in the ledger ------------------------------


def test_retry_of_a_night_never_recorded_is_exit_2_naming_the_nights_there_are(
    setup: Setup,
) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", "2026-11-25").returncode == 0
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    before = _invocations(setup)

    result = setup.cli("retry", "--date", "2020-01-01")

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "backupctl: error: retry: no night 2020-01-01 in the ledger (the nights recorded "
        f"run from 2026-11-25 to {NIGHT}; `backupctl runs` lists them)"
    )
    assert result.stdout == ""
    assert _invocations(setup) == before  # refused before anything was recorded


def test_retry_on_an_empty_ledger_or_beside_its_only_night_says_so(setup: Setup) -> None:
    quick_apps(setup, n=1)
    empty = setup.cli("retry", "--date", NIGHT)
    assert empty.returncode == 2, empty.stdout + empty.stderr
    assert (
        f"retry: no night {NIGHT} in the ledger (no night is recorded yet; "
        "`backupctl run-nightly` records one)"
    ) in empty.stderr

    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    other = setup.cli("retry", "--date", "2026-11-29")
    assert other.returncode == 2
    assert (
        f"retry: no night 2026-11-29 in the ledger (the only night recorded is {NIGHT})"
        in other.stderr
    )


def test_retry_of_a_missed_night_is_exit_2_and_points_at_run_nightly(setup: Setup) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", "2026-11-26").returncode == 0
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0  # 11-27 missed

    result = setup.cli("retry", "--date", "2026-11-27")

    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "retry: night 2026-11-27 was missed: none of its backups ran, so none failed; "
        "run it with `backupctl run-nightly --date 2026-11-27`"
    ) in result.stderr
    with_app = setup.cli("retry", "--date", "2026-11-27", "--app", "files-app")
    assert with_app.returncode == 2 and "was missed" in with_app.stderr


def test_retry_of_an_app_not_in_the_night_is_exit_2_listing_a_few_of_its_apps(
    setup: Setup,
) -> None:
    quick_apps(setup, n=7)  # files-app, cmd-0 .. cmd-5
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    typo = setup.cli("retry", "--date", NIGHT, "--app", "nope")

    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert typo.stderr.strip() == (
        f"backupctl: error: retry: app 'nope' has no backup in night {NIGHT} "
        "(its apps: cmd-0, cmd-1, cmd-2, cmd-3, cmd-4 and 2 more)"
    )
    # An app added to the registry after the night has no backup in it either.
    setup.write_registry(
        setup.registry.read_text() + '\n[[app]]\nid = "later"\nkind = "command"\nargv = ["true"]\n'
    )
    later = setup.cli("retry", "--date", NIGHT, "--app", "later")
    assert later.returncode == 2
    assert f"retry: app 'later' has no backup in night {NIGHT}" in later.stderr


def test_a_short_list_of_the_nights_apps_is_shown_whole(setup: Setup) -> None:
    quick_apps(setup, n=2)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    result = setup.cli("retry", "--date", NIGHT, "--app", "nope")
    assert result.returncode == 2
    assert result.stderr.rstrip().endswith("(its apps: cmd-0, files-app)")


def test_retry_needs_a_date_as_before(setup: Setup) -> None:
    quick_apps(setup, n=1)
    result = setup.cli("retry")
    assert result.returncode == 2
    assert "Missing option '--date'" in result.stderr


# -- retry: a recorded night with nothing failed, and counted nouns ------------------


def test_a_night_with_nothing_failed_is_exit_0_nothing_to_retry_with_counts(
    setup: Setup,
) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", "2026-11-27").returncode == 0
    quick_apps(setup, n=3)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    one = setup.cli("retry", "--date", "2026-11-27")
    three = setup.cli("retry", "--date", NIGHT)
    app = setup.cli("retry", "--date", NIGHT, "--app", "cmd-1")

    assert one.returncode == 0, one.stdout + one.stderr
    assert one.stdout.strip() == (
        "nothing to retry: no failed backup in night 2026-11-27 (1 backup: 1 succeeded)"
    )
    assert three.returncode == 0
    assert three.stdout.strip() == (
        f"nothing to retry: no failed backup in night {NIGHT} (3 backups: 3 succeeded)"
    )
    assert app.returncode == 0
    assert app.stdout.strip() == (
        f"nothing to retry: no failed backup for app 'cmd-1' on {NIGHT} (its backup: succeeded)"
    )


def test_retry_counts_one_failed_backup_and_two(setup: Setup) -> None:
    quick_apps(setup, n=1)
    setup.write_registry(
        setup.registry.read_text() + FAILING + FAILING.replace('"broken"', '"other"')
    )
    assert setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY).returncode == 1

    one = setup.cli("retry", "--date", NIGHT, "--app", "other", **ONE_TRY)
    both = setup.cli("retry", "--date", NIGHT, **ONE_TRY)

    assert one.returncode == 1, one.stdout + one.stderr
    assert one.stdout.splitlines()[0] == f"retrying 1 failed backup of {NIGHT}: other"
    assert both.returncode == 1
    assert both.stdout.splitlines()[0] == f"retrying 2 failed backups of {NIGHT}: broken, other"
    assert f"night {NIGHT}: still failed: broken, other" in both.stdout


# -- config check: what a backup would miss now --------------------------------------


def _check(
    setup: Setup, *args: str, prefix: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "backupctl", "config", "check", *args],
        env={**setup.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=setup.root,
    )


def _user() -> str:
    import pwd

    return f"user {pwd.getpwuid(os.geteuid()).pw_name} (uid {os.geteuid()})"


def test_config_check_names_each_missing_folder_and_program_with_its_app_and_field(
    setup: Setup,
) -> None:
    root = setup.root
    (root / "a-file").write_text("not a folder\n")
    (root / "export.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "export.sh").chmod(0o644)  # no x bit for anyone: even root may not run it
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "half-installed").write_text("#!/bin/sh\n")
    (bin_dir / "half-installed").chmod(0o644)
    (root / "data").mkdir()
    setup.write_registry(f"""
[[app]]
id = "wiki"
kind = "files"
path = "{root / "srv" / "wiki"}"

[[app]]
id = "notes"
kind = "files"
path = "a-file"            # relative to the registry

[[app]]
id = "crm"
kind = "command"
argv = ["crm-export", "--stdout"]

[[app]]
id = "half"
kind = "command"
argv = ["half-installed"]

[[app]]
id = "gone"
kind = "command"
argv = ["{root / "no-such-export"}"]

[[app]]
id = "plain"
kind = "command"
argv = ["{root / "export.sh"}"]

[[app]]
id = "folder"
kind = "command"
argv = ["{bin_dir}"]

[[app]]
id = "fine"
kind = "files"
path = "data"

[[app]]
id = "on-path"
kind = "command"
argv = ["true"]

[[app]]
id = "off"
kind = "files"
path = "{root / "not-there"}"
enabled = false            # not backed up: not checked
""")
    search = f"{bin_dir}:/usr/bin:/bin"

    result = _check(setup, PATH=search)

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("configuration is valid, but 7 backups would fail now:")
    assert lines[start + 1 :] == [
        f"  app 'wiki': path {root / 'srv' / 'wiki'} does not exist",
        f"  app 'notes': path {root / 'a-file'} is not a folder",
        f"  app 'crm': argv: program 'crm-export' not found on PATH ({search})",
        f"  app 'half': argv: program {bin_dir / 'half-installed'} is not executable by "
        f"{_user()} (found on PATH)",
        f"  app 'gone': argv: program {root / 'no-such-export'} does not exist",
        f"  app 'plain': argv: program {root / 'export.sh'} is not executable by {_user()}",
        f"  app 'folder': argv: program {bin_dir} is a folder, not a program",
    ]
    assert result.stderr == ""

    doc = json.loads(_check(setup, "--json", PATH=search).stdout)
    assert len(doc["would_fail_now"]) == 7
    assert doc["would_fail_now"][0] == f"app 'wiki': path {root / 'srv' / 'wiki'} does not exist"


def test_config_check_of_one_missing_folder_says_1_backup_and_exits_1(setup: Setup) -> None:
    quick_apps(setup, n=2)
    shutil.rmtree(setup.root / "data")
    result = _check(setup)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "configuration is valid, but 1 backup would fail now:" in result.stdout
    assert f"app 'files-app': path {setup.root / 'data'} does not exist" in result.stdout
    (setup.root / "data").mkdir()  # the mount appeared
    again = _check(setup)
    assert again.returncode == 0, again.stdout
    assert again.stdout.rstrip().endswith("configuration is valid")


def test_a_malformed_app_is_still_exit_2_and_no_would_fail_list(setup: Setup) -> None:
    setup.write_registry(f"""
[[app]]
id = "wiki"
kind = "files"
path = "{setup.root / "srv" / "wiki"}"

[[app]]
id = "crm"
kind = "command"
argv = ["bin/crm-export"]
""")
    result = _check(setup)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "app 'crm': argv: the program 'bin/crm-export' must be an absolute path" in (
        result.stderr
    )
    assert "would fail now" not in result.stdout and "does not exist" not in result.stdout


def _without_read_override() -> tuple[str, ...] | None:
    """A prefix that makes a root process obey file permissions (no CAP_DAC_OVERRIDE or
    CAP_DAC_READ_SEARCH): () when not root; None when root can't drop them here."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    prefix = (setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0)  # readable only with the capabilities kept
        try:
            probe = subprocess.run(
                [*prefix, sys.executable, "-c", f"import os; os.listdir({tmp!r})"],
                capture_output=True,
            )
        finally:
            os.chmod(tmp, 0o700)
    return prefix if probe.returncode != 0 else None


def test_config_check_says_which_user_may_not_read_a_folder(setup: Setup, tmp_path: Path) -> None:
    prefix = _without_read_override()
    if prefix is None:
        pytest.skip(
            "running as root, which reads every folder, and setpriv can't drop "
            "CAP_DAC_OVERRIDE here: no unreadable folder can be made"
        )
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    setup.write_registry(f"""
[[app]]
id = "locked"
kind = "files"
path = "{locked}"

[[app]]
id = "behind"
kind = "files"
path = "{locked / "inner"}"
""")
    locked.chmod(0)
    try:
        result = _check(setup, prefix=prefix)
    finally:
        locked.chmod(0o700)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "configuration is valid, but 2 backups would fail now:" in result.stdout
    assert f"  app 'locked': path {locked} is not readable by {_user()}" in result.stdout
    assert (
        f"  app 'behind': path {locked / 'inner'} can't be reached by {_user()}: "
        "a folder on the way is not searchable"
    ) in result.stdout
