"""check, status and the metrics judge the current registry's enabled apps; rows of
apps that left it (removed or disabled) are history."""

from __future__ import annotations

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Setup

NIGHT = "2026-11-28"


def command_app(app_id: str, code: str = "print('x' * 100)", *, enabled: bool = True) -> str:
    """A registry entry for a `command` app that runs `code` in Python."""
    return (
        f'\n[[app]]\nid = "{app_id}"\nkind = "command"\n'
        f'argv = ["{sys.executable}", "-c", "{code}"]\n' + ("" if enabled else "enabled = false\n")
    )


FAILING = "import sys; sys.stderr.write('disk gone'); sys.exit(2)"


def registry(setup: Setup, *entries: str) -> None:
    setup.write_registry("".join(entries))


def a_night_with_a_failed_app(setup: Setup) -> None:
    """keep-a and keep-b succeed, old-app fails on its only attempt."""
    registry(setup, command_app("keep-a"), command_app("keep-b"), command_app("old-app", FAILING))
    night = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")
    assert night.returncode == 1, night.stdout + night.stderr


# -- check ----------------------------------------------------------------------------


def test_check_is_ok_when_the_app_that_failed_has_left_the_registry(setup: Setup) -> None:
    a_night_with_a_failed_app(setup)
    registry(setup, command_app("keep-a"), command_app("keep-b"))  # old-app is retired

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"OK: night {NIGHT} complete, 2 apps backed up, "
        "1 app no longer in the registry (not judged)"
    )
    (old,) = [line for line in lines if line.startswith("  old-app:")]
    assert old.startswith("  old-app: failed, no longer in the registry, not judged - ")
    assert "disk gone" in old
    assert "never succeeded" not in result.stdout
    assert [line.split(":")[0] for line in lines[1:]] == ["  keep-a", "  keep-b", "  old-app"]


def test_check_says_an_app_is_disabled_and_does_not_judge_it(setup: Setup) -> None:
    a_night_with_a_failed_app(setup)
    registry(
        setup,
        command_app("keep-a"),
        command_app("keep-b"),
        command_app("old-app", FAILING, enabled=False),
    )

    result = setup.cli("check", "--date", NIGHT, "--json")

    assert result.returncode == 0, result.stdout
    doc = json.loads(result.stdout)
    old = next(a for a in doc["apps"] if a["app_id"] == "old-app")
    assert (old["status"], old["judged"], old["registry"]) == ("failed", False, "disabled")
    assert old["history"] == "disabled in the registry"
    assert old["problem"] is None and "disk gone" in old["note"]
    keep = next(a for a in doc["apps"] if a["app_id"] == "keep-a")
    assert (keep["judged"], keep["registry"], keep["history"]) == (True, "enabled", None)
    judged = doc["judged"]
    assert (judged["source"], judged["apps"], judged["succeeded"], judged["failed"]) == (
        "registry",
        2,
        2,
        0,
    )
    assert judged["history"] == ["old-app"]


def test_a_history_app_that_succeeded_shows_its_last_success(setup: Setup) -> None:
    registry(setup, command_app("keep-a"), command_app("old-app"))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    registry(setup, command_app("keep-a"))

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 0, result.stdout
    assert "  old-app: succeeded, no longer in the registry, not judged, last success " in (
        result.stdout
    )


def test_an_app_of_the_registry_that_never_succeeded_is_still_critical(setup: Setup) -> None:
    registry(setup, command_app("keep-a"))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    registry(setup, command_app("keep-a"), command_app("new-app"))  # added after the night

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 2, result.stdout
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"CRITICAL: night {NIGHT}: 1 enabled app not in this night (new-app)")
    assert "1 with no success within 48h00m (new-app)" in first
    assert "  new-app: missing, never succeeded - no success ever" in result.stdout


def test_check_judges_the_planned_apps_when_the_registry_cannot_be_read(setup: Setup) -> None:
    registry(setup, command_app("keep-a"), command_app("keep-b"))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    setup.registry.write_text("[[app]\nthis is not toml")

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"WARNING: night {NIGHT}: the registry can't be read ({setup.registry}")
    assert "judged the 2 apps the night planned" in first
    assert "  keep-a: succeeded, last success " in result.stdout
    doc = json.loads(setup.cli("check", "--date", NIGHT, "--json").stdout)
    assert doc["judged"]["source"] == "planned"
    assert "not valid TOML" in doc["judged"]["registry_error"]
    assert {a["registry"] for a in doc["apps"]} == {"planned"}


def test_a_failed_night_stays_critical_when_the_registry_cannot_be_read(setup: Setup) -> None:
    a_night_with_a_failed_app(setup)
    setup.registry.unlink()

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 2, result.stdout
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"CRITICAL: night {NIGHT}: ")
    assert "1 failed (old-app)" in first
    assert f"the registry can't be read ({setup.registry}: no such registry file)" in first


def test_a_skipped_row_of_the_planned_night_is_history_without_the_registry(
    setup: Setup,
) -> None:
    a_night_with_a_failed_app(setup)
    registry(setup, command_app("keep-a"), command_app("keep-b"))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0  # old-app: skipped
    setup.registry.unlink()

    result = setup.cli("check", "--date", NIGHT)

    assert result.returncode == 1, result.stdout  # WARNING: only the registry
    assert "judged the 2 apps the night planned" in result.stdout
    assert "  old-app: skipped, skipped when its app left the registry, not judged" in (
        result.stdout
    )


# -- metrics --------------------------------------------------------------------------


def last_success_metrics(setup: Setup) -> dict[str, float]:
    text = (setup.root / "backupctl.prom").read_text()
    return {
        s.labels["app"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "backupctl_last_success_timestamp_seconds"
    }


def test_metrics_write_no_zero_timestamp_for_apps_that_left_the_registry(setup: Setup) -> None:
    env = {
        "BACKUPCTL_MONITORING_METRICS_FILE": str(setup.root / "backupctl.prom"),
        "BACKUPCTL_RUN_MAX_ATTEMPTS": "1",
    }
    registry(setup, command_app("keep-a"), command_app("was-good"), command_app("old-app", FAILING))
    assert setup.cli("run-nightly", "--date", NIGHT, **env).returncode == 1
    before = last_success_metrics(setup)
    assert before["old-app"] == 0 and before["was-good"] > 1.7e9  # still in the registry

    # Both leave the registry; a new app arrives and fails; the night is run again.
    registry(setup, command_app("keep-a"), command_app("new-app", FAILING))
    assert setup.cli("run-nightly", "--date", NIGHT, **env).returncode == 1

    after = last_success_metrics(setup)
    assert set(after) == {"keep-a", "new-app"}
    assert after["keep-a"] > 1.7e9
    assert after["new-app"] == 0  # an app of the registry that never succeeded


# -- status ---------------------------------------------------------------------------


def test_status_lists_apps_that_left_the_registry_apart_as_history(setup: Setup) -> None:
    a_night_with_a_failed_app(setup)
    registry(
        setup, command_app("keep-a"), command_app("keep-b", enabled=False), command_app("new-app")
    )

    result = setup.cli("status", "--date", NIGHT)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"night {NIGHT}: incomplete, 1/1 succeeded, 0 failed; "
        "2 apps no longer in the registry; 1 app of the registry not in this night (new-app)"
    )
    assert [line.split()[0] for line in lines[1:3]] == ["app", "keep-a"]
    history = lines[lines.index("") + 1 :]
    assert history[0] == "no longer in the registry (2 backups, history, not judged):"
    assert history[1].split()[:3] == ["app", "registry", "status"]
    assert history[2].split()[:3] == ["keep-b", "disabled", "succeeded"]
    assert history[3].split()[:3] == ["old-app", "removed", "failed"]
    assert "disk gone" in history[3]


def test_status_json_marks_each_backup_in_or_out_of_the_registry(setup: Setup) -> None:
    a_night_with_a_failed_app(setup)
    registry(setup, command_app("keep-a"), command_app("keep-b"))

    doc = json.loads(setup.cli("status", "--date", NIGHT, "--json").stdout)

    assert doc["night"]["failed"] == 1  # the ledger's record of the night, unchanged
    marks = {b["app_id"]: (b["in_registry"], b["registry"]) for b in doc["backups"]}
    assert marks == {
        "keep-a": (True, "enabled"),
        "keep-b": (True, "enabled"),
        "old-app": (False, "removed"),
    }
    judged = doc["judged"]
    assert (judged["apps"], judged["planned"], judged["succeeded"], judged["failed"]) == (
        2,
        2,
        2,
        0,
    )
    assert judged["history"] == ["old-app"] and judged["source"] == "registry"


def test_status_works_without_the_registry_and_says_so(setup: Setup) -> None:
    a_night_with_a_failed_app(setup)
    setup.registry.unlink()

    result = setup.cli("status", "--date", NIGHT)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"night {NIGHT}: incomplete, 2/3 succeeded, 1 failed"
    assert f"the registry can't be read ({setup.registry}: no such registry file)" in (
        result.stderr
    )
    doc = json.loads(setup.cli("status", "--date", NIGHT, "--json").stdout)
    assert {b["in_registry"] for b in doc["backups"]} == {None}
    assert doc["judged"]["source"] == "planned"
