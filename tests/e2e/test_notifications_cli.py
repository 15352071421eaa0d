"""Notifications through Apprise: the real CLI in subprocesses, Apprise's json:// posting
to a local HTTP server (tests/notify_server.py) that records what it was told."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backupctl.checks import night_to_check
from backupctl.durations import parse_window
from tests.conftest import Setup, free_port
from tests.e2e.test_mistakes_cli import ONE_TRY
from tests.e2e.test_nightly_cli import quick_apps
from tests.e2e.test_queue_cli import Queue, standard_queue  # noqa: F401 (fixture)
from tests.notify_server import SECRET_PATH, NotifyServer

NIGHT = "2026-11-28"
# A failing app whose error holds a password: the message must carry it masked.
LEAKY_ARGV = [
    sys.executable,
    "-c",
    "import sys; sys.stderr.write('disk full, password=hunter2\\n'); sys.exit(2)",
]
LEAKY = f"""
[[app]]
id = "broken"
kind = "command"
argv = {json.dumps(LEAKY_ARGV)}
"""


@pytest.fixture
def server(setup: Setup) -> Iterator[NotifyServer]:
    with NotifyServer() as srv:
        setup.env["BACKUPCTL_MONITORING_NOTIFY"] = srv.url
        yield srv


def told(setup: Setup) -> list[tuple[object, ...]]:
    return setup.query(
        "SELECT run_date::text, event, status, attempts FROM backupctl.notifications "
        "ORDER BY run_date, event"
    )


def failing_night(setup: Setup) -> None:
    quick_apps(setup)
    setup.write_registry(setup.registry.read_text() + LEAKY)


def closed_window() -> tuple[str, str]:
    """A [run] window that closed two hours ago, and the night `check` then judges."""
    now = datetime.now(UTC)
    window = f"{now - timedelta(hours=3):%H:%M}-{now - timedelta(hours=2):%H:%M}"
    night, window_open = night_to_check(now, parse_window(window), ZoneInfo("UTC"))
    assert not window_open
    return window, night.isoformat()


def test_a_failing_night_sends_one_failure_message_and_a_rerun_sends_no_second(
    setup: Setup, server: NotifyServer
) -> None:
    failing_night(setup)
    first = setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY)
    assert first.returncode == 1, first.stderr

    assert len(server.posts) == 1
    post = server.posts[0]
    assert post["type"] == "failure"
    assert post["title"].startswith(f"backupctl: 1 of 4 apps failed on {NIGHT} (")
    body = post["message"]
    assert "- broken: failed after 1 attempt: command exited with status 2: disk full" in body
    assert "password=***" in body and "hunter2" not in body
    assert f"Next: backupctl retry --date {NIGHT}" in body
    assert f"backupctl status --date {NIGHT}" in body
    assert server.paths == [SECRET_PATH]
    assert SECRET_PATH not in first.stdout + first.stderr

    again = setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY)
    assert again.returncode == 1
    assert len(server.posts) == 1
    assert told(setup) == [(NIGHT, "failure", "sent", 1)]
    # The ledger keeps a hash of the URL, never the URL.
    stored = json.dumps(setup.query("SELECT * FROM backupctl.notifications"), default=str)
    assert "5ecret" not in stored and "127.0.0.1" not in stored


def test_two_runs_of_a_failing_night_at_once_send_one_message(
    setup: Setup, server: NotifyServer
) -> None:
    failing_night(setup)
    procs = [setup.start("run-nightly", "--date", NIGHT, **ONE_TRY) for _ in range(2)]
    for proc in procs:
        proc.communicate(timeout=120)
    # (One may end while the other still holds the failing backup: it leaves the telling.)
    assert 1 in [p.returncode for p in procs]

    assert len(server.posts) == 1
    assert server.posts[0]["title"].startswith(f"backupctl: 1 of 4 apps failed on {NIGHT}")
    assert told(setup) == [(NIGHT, "failure", "sent", 1)]


def test_a_good_night_sends_nothing(setup: Setup, server: NotifyServer) -> None:
    quick_apps(setup)
    result = setup.cli(
        "run-nightly",
        "--date",
        NIGHT,
        BACKUPCTL_MONITORING_NOTIFY_ON="failure,missed,warning,recovered",
    )

    assert result.returncode == 0, result.stderr
    assert server.posts == []
    assert told(setup) == []


def test_a_good_night_after_a_failed_one_sends_one_recovered(
    setup: Setup, server: NotifyServer
) -> None:
    failing_night(setup)
    setup.cli("run-nightly", "--date", "2026-11-27", **ONE_TRY)
    quick_apps(setup)  # the broken app is fixed (gone)
    for night in ("2026-11-28", "2026-11-28", "2026-11-29"):
        result = setup.cli("run-nightly", "--allow-shrink", "--date", night)
        assert result.returncode == 0, result.stderr

    assert [p["type"] for p in server.posts] == ["failure", "success"]
    recovered = server.posts[1]
    assert recovered["title"].startswith(
        "backupctl: night 2026-11-28 complete again, 3 of 3 apps ("
    )
    assert "The night before it, 2026-11-27, failed." in recovered["message"]
    assert told(setup) == [
        ("2026-11-27", "failure", "sent", 1),
        ("2026-11-28", "recovered", "sent", 1),
    ]


def test_check_after_a_missed_night_sends_one_missed_however_often_it_runs(
    setup: Setup, server: NotifyServer
) -> None:
    quick_apps(setup)
    window, night = closed_window()
    env = {"BACKUPCTL_RUN_WINDOW": window}
    codes = [setup.cli("check", **env).returncode for _ in range(3)]

    assert codes == [2, 2, 2]  # CRITICAL: no run recorded
    assert len(server.posts) == 1
    missed = server.posts[0]
    assert missed["type"] == "failure"
    assert missed["title"].startswith(f"backupctl: night {night} was missed (")
    assert f"Next: backupctl run-nightly --date {night}" in missed["message"]
    assert told(setup) == [(night, "missed", "sent", 1)]


def test_with_a_whole_day_window_check_tells_of_yesterday_missed_while_today_runs(
    setup: Setup, server: NotifyServer
) -> None:
    quick_apps(setup)  # the default window: the whole day, in UTC
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    for _ in range(2):
        setup.cli("check")

    assert [post["title"].split(" (")[0] for post in server.posts] == [
        f"backupctl: night {yesterday} was missed"
    ]
    assert told(setup) == [(yesterday, "missed", "sent", 1)]


def test_check_tells_once_of_each_night_a_later_run_recorded_as_missed(
    setup: Setup, server: NotifyServer
) -> None:
    quick_apps(setup)
    window, night = closed_window()
    env = {"BACKUPCTL_RUN_WINDOW": window}
    latest = date.fromisoformat(night)
    first = latest - timedelta(days=4)
    for ran in (first, latest):  # the host was off for the three nights between
        assert setup.cli("run-nightly", "--date", ran.isoformat(), **env).returncode == 0
    for _ in range(2):
        setup.cli("check", **env)

    gap = [(latest - timedelta(days=d)).isoformat() for d in (3, 2, 1)]
    assert told(setup) == sorted(
        [*((d, "missed", "sent", 1) for d in gap), (night, "recovered", "sent", 1)]
    )
    missed = [p["title"] for p in server.posts if "was missed" in p["title"]]
    assert [t.split(" (")[0] for t in missed] == [f"backupctl: night {d} was missed" for d in gap]


def test_check_tells_of_a_failed_night_nobody_told(setup: Setup, server: NotifyServer) -> None:
    failing_night(setup)
    window, night = closed_window()
    env = {"BACKUPCTL_RUN_WINDOW": window}
    # Run without notify configured: the night failed and nobody told.
    ran = setup.cli(
        "run-nightly", "--date", night, BACKUPCTL_MONITORING_NOTIFY="", **env, **ONE_TRY
    )
    assert ran.returncode == 1 and server.posts == []

    for _ in range(2):
        assert setup.cli("check", **env).returncode == 2
    assert [p["title"].split(" (")[0] for p in server.posts] == [
        f"backupctl: 1 of 4 apps failed on {night}"
    ]
    # With --date check only judges: it tells of nothing.
    other = setup.cli("check", "--date", "2026-01-01", **env)
    assert other.returncode == 2 and len(server.posts) == 1


def test_a_warning_is_sent_only_when_notify_on_names_it(setup: Setup, server: NotifyServer) -> None:
    after = [sys.executable, "-c", "import sys; sys.stderr.write('queue not resumed'); sys.exit(1)"]
    setup.write_registry(
        f"""
[[app]]
id = "shop"
kind = "command"
argv = ["{sys.executable}", "-c", "print('data' * 100)"]
after = {json.dumps(after)}
"""
    )
    default = setup.cli("run-nightly", "--date", "2026-11-27")
    assert default.returncode == 0, default.stderr
    assert server.posts == []

    asked = setup.cli(
        "run-nightly", "--date", NIGHT, BACKUPCTL_MONITORING_NOTIFY_ON="failure,warning"
    )
    assert asked.returncode == 0, asked.stderr
    assert len(server.posts) == 1
    warning = server.posts[0]
    assert warning["type"] == "warning"
    assert warning["title"].startswith(f"backupctl: 1 of 1 backups on {NIGHT} need a look (")
    assert "- shop: succeeded, but its after hook exited with status 1" in warning["message"]


def test_an_unreachable_notify_server_is_a_warning_and_keeps_the_exit_code(
    setup: Setup,
) -> None:
    failing_night(setup)
    port = free_port()
    url = f"json://127.0.0.1:{port}{SECRET_PATH}"
    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_MONITORING_NOTIFY=url, **ONE_TRY)

    assert result.returncode == 1  # as without notify: the backup failed
    warning = [line for line in result.stderr.splitlines() if "notification" in line]
    assert warning and "WARNING" in warning[0], result.stderr
    assert f"json://127.0.0.1:{port}/…" in warning[0]
    assert "5ecret" not in result.stdout + result.stderr
    assert told(setup) == [(NIGHT, "failure", "failed", 1)]


def test_a_failed_send_is_retried_by_the_next_sender(setup: Setup, server: NotifyServer) -> None:
    server.status = 500
    failing_night(setup)
    first = setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY)
    assert first.returncode == 1
    assert "notification" in first.stderr and "5ecret" not in first.stderr
    assert told(setup) == [(NIGHT, "failure", "failed", 1)]

    server.status = 200
    setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY)
    setup.cli("run-nightly", "--date", NIGHT, **ONE_TRY)
    assert len(server.posts) == 1
    assert told(setup) == [(NIGHT, "failure", "sent", 2)]


def test_the_worker_that_ends_the_night_tells_of_it(
    setup: Setup,
    server: NotifyServer,
    standard_queue: Queue,  # noqa: F811
) -> None:
    failing_night(setup)
    enqueued = setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT)
    assert enqueued.returncode == 0, enqueued.stderr
    assert server.posts == []  # the night is not over yet

    worker = setup.cli("worker", "--once", **ONE_TRY)
    assert worker.returncode == 1, worker.stdout + worker.stderr
    assert [p["title"].split(" (")[0] for p in server.posts] == [
        f"backupctl: 1 of 4 apps failed on {NIGHT}"
    ]


def test_bad_notify_urls_are_one_configuration_error_naming_each(setup: Setup) -> None:
    quick_apps(setup)
    urls = f"json://127.0.0.1:9{SECRET_PATH} nosuch://5ecret-token mailto://"
    result = setup.cli("config", "check", BACKUPCTL_MONITORING_NOTIFY=urls)

    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "[monitoring] notify" in line]
    assert len(lines) == 2, result.stderr
    assert "URL 2 (nosuch://…) is not one Apprise can send to" in lines[0]
    assert "URL 3 (mailto://…)" in lines[1]
    assert "BACKUPCTL_MONITORING_NOTIFY" in lines[0]
    assert "5ecret" not in result.stdout + result.stderr


def test_config_check_shows_notify_urls_masked(setup: Setup) -> None:
    quick_apps(setup)
    slack = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    urls = f"json://127.0.0.1:9{SECRET_PATH}, {slack} mailto://me:hunter2@mail.example.com"
    result = setup.cli("config", "check", "--json", BACKUPCTL_MONITORING_NOTIFY=urls)

    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["monitoring.notify"]["value"] == (
        "json://127.0.0.1:9/…, slack://…, mailto://mail.example.com/…"
    )
    assert settings["monitoring.notify_on"]["value"] == "failure, missed, recovered"
    for secret in ("5ecret", "T1JJ3T3L2", "TIiajk", "hunter2", "me:"):
        assert secret not in result.stdout + result.stderr


def test_retry_tells_when_its_round_ends_what_the_night_had_not_told(
    setup: Setup, server: NotifyServer
) -> None:
    failing_night(setup)
    ran = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_MONITORING_NOTIFY="", **ONE_TRY)
    assert ran.returncode == 1 and server.posts == []

    for _ in range(2):  # still failing: the first round tells, the second has nothing new
        retried = setup.cli("retry", "--date", NIGHT, **ONE_TRY)
        assert retried.returncode == 1, retried.stdout + retried.stderr
    assert [p["title"].split(" (")[0] for p in server.posts] == [
        f"backupctl: 1 of 4 apps failed on {NIGHT}"
    ]
