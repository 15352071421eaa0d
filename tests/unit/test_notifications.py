"""Notifications: which events a night has, their messages, notify URLs shown and checked."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from backupctl import config
from backupctl.config import load_settings
from backupctl.errors import EXIT_USAGE, ConfigError
from backupctl.notifications import (
    MAX_ERROR,
    MAX_LISTED,
    compose,
    night_events,
    notify_url_problems,
    shown_notify_url,
    url_hash,
)

NIGHT = date(2026, 12, 2)


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent" / "backupctl.toml"))


def row(app_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"app_id": app_id, "status": status, "attempts": 1, "error": None, **extra}


def night_row(status: str) -> dict[str, Any]:
    return {"run_date": NIGHT, "status": status}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("json://127.0.0.1:8080/hooks/5ecret", "json://127.0.0.1:8080/…"),
        ("mailto://me:hunter2@mail.example.com?to=ops@example.com", "mailto://mail.example.com/…"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://…"),
        ("ntfy://ntfy.sh/backups-5ecret", "ntfy://ntfy.sh/…"),
        ("ntfy://backups-5ecret", "ntfy://…"),
        ("tgram://123456789:AAF5ecretToken/-100200300", "tgram://…"),
        ("jsons://[::1]:9/x", "jsons://[::1]:9/…"),
        ("no scheme at all", "a notify URL"),
    ],
)
def test_a_notify_url_shows_its_scheme_and_a_real_host_at_most(url: str, shown: str) -> None:
    assert shown_notify_url(url) == shown


def test_the_ledger_keeps_a_hash_that_names_nothing_of_the_url() -> None:
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    assert url_hash(url) == url_hash(url) != url_hash(url + "x")
    assert len(url_hash(url)) == 32 and "T1JJ" not in url_hash(url)


def test_a_night_that_ended_with_failures_tells_failure_and_warnings_if_any() -> None:
    rows = [row("a", "failed"), row("b", "succeeded", warning="20% of its usual size")]
    events = night_events(night_row("incomplete"), rows, None, window_closed=False)
    assert events == ["failure", "warning"]


def test_a_running_night_tells_nothing_until_check_sees_it_past_its_window() -> None:
    rows = [row("a", "failed"), row("b", "pending")]
    assert night_events(night_row("running"), rows, None, window_closed=False) == []
    assert night_events(night_row("running"), rows, None, window_closed=True) == ["failure"]


def test_a_backup_still_running_past_the_window_under_a_live_lease_is_no_failure_yet() -> None:
    alive = [row("a", "succeeded"), row("b", "running", lease_expired=False)]
    assert night_events(night_row("running"), alive, None, window_closed=True) == []
    # Its holder died: once the lease has run out, check tells.
    dead = [row("a", "succeeded"), row("b", "running", lease_expired=True)]
    assert night_events(night_row("running"), dead, None, window_closed=True) == ["failure"]


def test_a_night_without_a_run_is_missed_only_past_its_window() -> None:
    assert night_events(None, [], None, window_closed=False) == []
    assert night_events(None, [], None, window_closed=True) == ["missed"]
    assert night_events(night_row("missed"), [], None, window_closed=True) == ["missed"]


def test_a_complete_night_tells_recovered_only_after_a_bad_one() -> None:
    rows = [row("a", "succeeded"), row("b", "skipped")]
    good = {"run_date": date(2026, 12, 1), "status": "complete", "bad": False}
    bad = {"run_date": date(2026, 12, 1), "status": "missed", "bad": True}
    assert night_events(night_row("complete"), rows, None, window_closed=False) == []
    assert night_events(night_row("complete"), rows, good, window_closed=False) == []
    assert night_events(night_row("complete"), rows, bad, window_closed=False) == ["recovered"]


def test_a_failure_message_names_each_app_its_redacted_error_and_what_to_run() -> None:
    rows = [
        row("crm", "pending"),
        row("shop", "failed", attempts=3, error="pg_dump: password=hunter2\nconnection refused"),
        row("wiki", "succeeded"),
        row("old", "skipped"),
    ]
    message = compose("failure", NIGHT, rows, host="db1")

    assert message.title == "backupctl: 1 of 3 apps failed, 1 not done on 2026-12-02 (db1)"
    assert message.kind == "failure"
    assert message.body.splitlines() == [
        "Night 2026-12-02 on db1: 1 of 3 apps backed up.",
        "",
        "- shop: failed after 3 attempts: pg_dump: password=***; connection refused",
        "- crm: pending, not started",
        "",
        "Next: backupctl retry --date 2026-12-02",
        "Then: backupctl run-nightly --date 2026-12-02",
        "Details: backupctl status --date 2026-12-02",
    ]


def test_a_long_error_and_a_long_list_are_cut_short() -> None:
    rows = [row(f"app-{i:03}", "failed", error="x" * 5000) for i in range(MAX_LISTED + 7)]
    message = compose("failure", NIGHT, rows, host="db1")

    assert message.title.startswith(f"backupctl: {MAX_LISTED + 7} of {MAX_LISTED + 7} apps failed")
    listed = [line for line in message.body.splitlines() if line.startswith("- ")]
    assert len(listed) == MAX_LISTED
    assert all(len(line) < MAX_ERROR + 60 and line.endswith("…") for line in listed)
    assert "… and 7 more" in message.body


def test_missed_warning_and_recovered_messages() -> None:
    missed = compose("missed", NIGHT, [], host="db1", window="01:00-06:00 Europe/Amsterdam")
    assert missed.title == "backupctl: night 2026-12-02 was missed (db1)"
    assert "within its window (01:00-06:00 Europe/Amsterdam)" in missed.body
    assert "Next: backupctl run-nightly --date 2026-12-02" in missed.body

    rows = [
        row("shop", "succeeded", warning="12% of its usual size"),
        row("wiki", "succeeded", hook_warning="after hook exited with status 1: token=abc"),
        row("crm", "succeeded"),
    ]
    warning = compose("warning", NIGHT, rows, host="db1")
    assert warning.title == "backupctl: 2 of 3 backups on 2026-12-02 need a look (db1)"
    assert warning.kind == "warning"
    assert "- shop: succeeded, but 12% of its usual size" in warning.body
    assert "- wiki: succeeded, but its after hook exited with status 1: token=***" in warning.body

    before = {"run_date": date(2026, 12, 1), "status": "incomplete", "bad": True}
    recovered = compose("recovered", NIGHT, rows, host="db1", before=before)
    assert recovered.title == "backupctl: night 2026-12-02 complete again, 3 of 3 apps (db1)"
    assert recovered.kind == "success"
    assert "The night before it, 2026-12-01, failed." in recovered.body


def test_every_url_apprise_does_not_know_is_reported_at_once() -> None:
    problems = notify_url_problems(
        ["json://127.0.0.1:9/x", "nosuch://5ecret", "mailto://", "slack://T1/B2/C3"]
    )
    assert problems == [
        "URL 2 (nosuch://…) is not one Apprise can send to: check its scheme and fields "
        "against Apprise's list of services",
        "URL 3 (mailto://…) is not one Apprise can send to: check its scheme and fields "
        "against Apprise's list of services",
    ]


def test_notify_without_apprise_installed_is_a_configuration_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # what a missing package looks like
    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, env={"BACKUPCTL_MONITORING_NOTIFY": "json://127.0.0.1:9/x"})

    assert excinfo.value.exit_code == EXIT_USAGE
    assert excinfo.value.problems == [
        "BACKUPCTL_MONITORING_NOTIFY: [monitoring] notify: needs Apprise, which is not "
        "installed: pip install 'backupctl[notify]'"
    ]
    # Without notify, Apprise is never needed.
    assert load_settings(None, env={}).notify == ()


def test_notify_settings_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "backupctl.toml"
    path.write_text(
        '[monitoring]\nnotify = ["json://127.0.0.1:9/a", "json://127.0.0.1:9/a"]\n'
        'notify_on = ["recovered", "warning"]\n'
    )
    settings = load_settings(str(path), env={})
    assert settings.notify == ("json://127.0.0.1:9/a",)  # one message per URL, not two
    assert settings.notify_on == ("warning", "recovered")
    assert load_settings(None, env={}).notify_on == ("failure", "missed", "recovered")

    env = {
        "BACKUPCTL_MONITORING_NOTIFY": (
            "mailtos://u:p@mail.example.com?to=a@example.com,b@example.com, "
            "json://127.0.0.1:9/b  json://127.0.0.1:9/c"
        ),
        "BACKUPCTL_MONITORING_NOTIFY_ON": "failure, warning",
    }
    settings = load_settings(None, env=env)
    assert settings.notify == (
        "mailtos://u:p@mail.example.com?to=a@example.com,b@example.com",
        "json://127.0.0.1:9/b",
        "json://127.0.0.1:9/c",
    )
    assert settings.notify_on == ("failure", "warning")


def test_bad_notify_settings_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "backupctl.toml"
    path.write_text(
        '[monitoring]\nnotify = ["json://127.0.0.1:9/a", 7]\nnotify_on = ["sometimes"]\n'
    )
    with pytest.raises(ConfigError) as excinfo:
        load_settings(str(path), env={})
    assert excinfo.value.problems == [
        f'{path}: [monitoring] notify: must be a list of Apprise URLs, such as ["mailto://user:pw@host"]',
        f"{path}: [monitoring] notify_on: unknown event 'sometimes' "
        "(the events: failure, missed, warning, recovered)",
    ]
