"""Mistakes are not successes: `retry` of a night or an app the ledger has no backup
for is exit 2. The real CLI against a real ledger."""

from __future__ import annotations

import sys

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
