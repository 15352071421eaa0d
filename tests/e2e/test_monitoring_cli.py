"""Pings, metrics and log output of the real CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Setup, free_port
from tests.e2e.test_nightly_cli import quick_apps
from tests.e2e.test_operator_cli import BROKEN

NIGHT = "2026-11-28"


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ping/5ecret-uuid-0123456789"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        assert isinstance(self.server, Recorder)
        self.server.seen.append((self.command, self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_good_night_pings_start_then_success_with_a_summary(
    setup: Setup, recorder: Recorder
) -> None:
    quick_apps(setup)
    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_MONITORING_PING_URL=recorder.url)

    assert result.returncode == 0, result.stderr
    assert [(m, p) for m, p, _ in recorder.seen] == [
        ("POST", "/ping/5ecret-uuid-0123456789/start"),
        ("POST", "/ping/5ecret-uuid-0123456789"),
    ]
    assert NIGHT in recorder.seen[0][2]
    assert recorder.seen[1][2].startswith(f"backupctl night {NIGHT}: complete")
    assert "3 succeeded" in recorder.seen[1][2]


def test_a_bad_night_pings_start_then_fail(setup: Setup, recorder: Recorder) -> None:
    quick_apps(setup)
    setup.write_registry(setup.registry.read_text() + BROKEN)
    result = setup.cli(
        "run-nightly",
        "--date",
        NIGHT,
        BACKUPCTL_MONITORING_PING_URL=recorder.url,
        BACKUPCTL_RUN_MAX_ATTEMPTS="1",
    )

    assert result.returncode == 1
    assert [p for _, p, _ in recorder.seen] == [
        "/ping/5ecret-uuid-0123456789/start",
        "/ping/5ecret-uuid-0123456789/fail",
    ]
    assert "broken" in recorder.seen[1][2] and "failed" in recorder.seen[1][2]


def test_an_unreachable_ping_url_changes_neither_the_exit_code_nor_shows_the_url(
    setup: Setup,
) -> None:
    quick_apps(setup)
    url = f"http://127.0.0.1:{free_port()}/ping/5ecret-uuid-0123456789"
    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_MONITORING_PING_URL=url)

    assert result.returncode == 0
    assert "ping" in result.stderr  # a warning says so...
    assert "5ecret-uuid" not in result.stdout + result.stderr  # ...without the secret


def test_the_metrics_file_parses_back_with_the_right_values(setup: Setup) -> None:
    quick_apps(setup)
    setup.write_registry(setup.registry.read_text() + BROKEN)
    metrics = setup.root / "backupctl.prom"
    setup.cli(
        "run-nightly",
        "--date",
        NIGHT,
        BACKUPCTL_MONITORING_METRICS_FILE=str(metrics),
        BACKUPCTL_RUN_MAX_ATTEMPTS="1",
    )

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert samples[("backupctl_backups", (("status", "succeeded"),))] == 3
    assert samples[("backupctl_backups", (("status", "failed"),))] == 1
    assert samples[("backupctl_last_success_timestamp_seconds", (("app", "broken"),))] == 0
    assert samples[("backupctl_last_success_timestamp_seconds", (("app", "cmd-0"),))] > 1.7e9
    sizes = {k[1][0][1]: v for k, v in samples.items() if k[0] == "backupctl_backup_size_bytes"}
    rows = setup.query(
        "SELECT app_id, size_bytes FROM backupctl.backups WHERE status = 'succeeded'"
    )
    assert sizes == {str(app): float(str(size)) for app, size in rows}
    assert samples[("backupctl_night_complete", ())] == 0
    assert [p.name for p in setup.root.iterdir() if p.name.startswith("backupctl.prom")] == [
        "backupctl.prom"
    ]


def test_quiet_prints_only_failures(setup: Setup) -> None:
    quick_apps(setup)
    good = setup.cli("-q", "run-nightly", "--date", NIGHT)
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")

    setup.write_registry(setup.registry.read_text() + BROKEN)
    bad = setup.cli("-q", "run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("broken  failed  attempt 1")
    assert lines[1].startswith(f"night {NIGHT}: 0 backed up now, 3 already done, 1 failed")
    assert len(lines) == 2
    assert bad.stderr.strip() and all("ERROR" in line for line in bad.stderr.splitlines())


def test_log_lines_are_text_unless_json_is_asked_for_naming_app_and_backup(
    setup: Setup,
) -> None:
    quick_apps(setup, n=2)
    result = setup.cli("-v", "--log-format", "json", "run-nightly", "--date", NIGHT)

    records = [json.loads(line) for line in result.stderr.splitlines()]
    about_backups = [r for r in records if r["logger"] == "backupctl.executor"]
    assert about_backups, records
    assert all({"ts", "level", "msg", "app_id", "backup_id"} <= set(r) for r in about_backups)
    text = setup.cli("-v", "run-nightly", "--date", "2026-11-01")  # another night: work to log
    assert text.stderr.strip() and not text.stderr.lstrip().startswith("{")
    assert "app cmd-0 backup" in text.stderr
    by_env = setup.cli("-v", "run-nightly", "--date", "2026-11-02", BACKUPCTL_LOG_FORMAT="json")
    assert by_env.stderr.strip()
    assert all(json.loads(line)["level"] for line in by_env.stderr.splitlines())
