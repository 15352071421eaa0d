"""Pings against a real HTTP server on 127.0.0.1: order, bodies, retries, timeouts, secrecy."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backupctl.monitoring import Pinger, night_summary, ping_url_problem, shown_ping_url

UUID = "0f8e3b1c-5d4a-4e2b-9c1f-7a6b5c4d3e2f"


def fast(url: str | None, max_body: int = 10_000) -> Pinger:
    """A pinger with test-sized timeout and backoff (3 tries)."""
    return Pinger(url, timeout=2.0, tries=3, backoff=0.01, max_body=max_body)


@dataclass
class Seen:
    method: str
    path: str
    body: str
    content_type: str
    authorization: str | None


@dataclass
class Server:
    """Records each request; answers with the next of `answers` (default 200), where an
    answer of "hang" holds the request until the test ends."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    answers: list[int | str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            state.seen.append(
                Seen(
                    self.command,
                    self.path,
                    body,
                    self.headers.get("Content-Type", ""),
                    self.headers.get("Authorization"),
                )
            )
            answer = state.answers.pop(0) if state.answers else 200
            if answer == "hang":
                state.release.wait(10)
                return
            assert isinstance(answer, int)
            payload = b"OK" if answer == 200 else b"nope"
            self.send_response(answer)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_HEAD = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/ping/{UUID}"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_good_night_pings_start_then_the_plain_url(server: Server) -> None:
    pinger = fast(server.url)
    assert pinger.start("starting 2026-11-28")
    assert pinger.success("night 2026-11-28: 3 succeeded")
    assert [(s.method, s.path, s.body) for s in server.seen] == [
        ("POST", f"/ping/{UUID}/start", "starting 2026-11-28"),
        ("POST", f"/ping/{UUID}", "night 2026-11-28: 3 succeeded"),
    ]
    assert all(s.content_type.startswith("text/plain") for s in server.seen)


def test_a_bad_night_pings_start_then_fail(server: Server) -> None:
    pinger = fast(server.url + "/")  # a trailing slash makes no double slash
    assert pinger.start()
    assert pinger.finish(False, "1 failed: shop")
    assert [(s.path, s.body) for s in server.seen] == [
        (f"/ping/{UUID}/start", ""),
        (f"/ping/{UUID}/fail", "1 failed: shop"),
    ]


def test_the_query_string_is_kept_and_credentials_become_basic_auth(server: Server) -> None:
    url = server.url.replace("http://", "http://hc:s3cr%40t@") + "?create=1"
    pinger = fast(url)
    assert pinger.fail("x")
    (seen,) = server.seen
    assert seen.path == f"/ping/{UUID}/fail?create=1"
    assert seen.authorization == "Basic " + base64.b64encode(b"hc:s3cr@t").decode()


def test_no_ping_url_makes_every_call_a_no_op() -> None:
    pinger = Pinger(None)
    assert not pinger.enabled
    assert pinger.start("x") and pinger.success("x") and pinger.fail("x")


def test_an_unreachable_ping_url_logs_a_warning_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://hc:hunter2@127.0.0.1:{closed_port()}/ping/{UUID}"
    pinger = Pinger(url, timeout=1.0, tries=2, backoff=0.01)
    with caplog.at_level(logging.DEBUG, logger="backupctl.monitoring"):
        assert pinger.fail(f"the body mentions {url}") is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "http://127.0.0.1:" in message and "failed" in message
    for record in caplog.records:
        text = record.getMessage()
        assert UUID not in text and "hunter2" not in text and "/ping" not in text


def test_5xx_answers_are_retried_until_one_succeeds(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.answers = [500, 503, 200]
    with caplog.at_level(logging.WARNING, logger="backupctl.monitoring"):
        assert fast(server.url).success("done")
    assert [s.body for s in server.seen] == ["done"] * 3
    assert not caplog.records


def test_a_ping_that_keeps_failing_gives_up_after_its_tries(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.answers = [500] * 5
    with caplog.at_level(logging.WARNING, logger="backupctl.monitoring"):
        assert not fast(server.url).success("done")
    assert len(server.seen) == 3
    (record,) = caplog.records
    assert "HTTP 500" in record.getMessage() and UUID not in record.getMessage()


def test_a_4xx_answer_is_not_retried(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    server.answers = [404]
    with caplog.at_level(logging.WARNING, logger="backupctl.monitoring"):
        assert not fast(server.url).start()
    assert len(server.seen) == 1
    assert "HTTP 404" in caplog.records[0].getMessage()


def test_a_server_slower_than_the_timeout_is_given_up_on(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.answers = ["hang"] * 5
    pinger = Pinger(server.url, timeout=0.3, tries=2, backoff=0.05)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="backupctl.monitoring"):
        assert not pinger.success("done")
    elapsed = time.monotonic() - began
    assert elapsed < 0.3 * 2 + 0.05 + 1.0  # about timeout × tries, plus the backoff
    assert len(server.seen) == 2
    assert "timed out" in caplog.records[0].getMessage()


def test_a_long_body_is_cut_to_the_limit_on_a_character_boundary(server: Server) -> None:
    assert fast(server.url, max_body=100).success("é" * 500)
    assert server.seen[0].body == "é" * 50


def test_the_ping_url_never_appears_in_a_body(server: Server) -> None:
    assert fast(server.url).fail(f"error talking to {server.url}: boom")
    assert UUID not in server.seen[0].body
    assert "boom" in server.seen[0].body


def test_a_ping_url_that_is_not_http_is_refused_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="backupctl.monitoring"):
        assert not Pinger("file:///etc/passwd").success("x")
    assert "http" in caplog.records[0].getMessage()
    assert "/etc/passwd" not in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hc-ping.com/{UUID}", "https://hc-ping.com/…"),
        (f"https://u:pw@hc.example:8443/ping/{UUID}?x=1", "https://hc.example:8443/…"),
        (f"http://[::1]:8000/{UUID}", "http://[::1]:8000/…"),
        ("not a url", "the ping URL"),
    ],
)
def test_a_ping_url_is_shown_as_scheme_and_host_only(url: str, shown: str) -> None:
    assert shown_ping_url(url) == shown


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        (f"https://hc-ping.com/{UUID}", True),
        ("http://127.0.0.1:8000/x", True),
        ("ftp://example.com/x", False),
        ("https:///x", False),
        ("http://host:notaport/x", False),
    ],
)
def test_ping_url_problem(url: str, ok: bool) -> None:
    assert (ping_url_problem(url) is None) == ok


def test_night_summary_counts_and_lists_what_is_not_done() -> None:
    rows = [
        {"app_id": "a", "status": "succeeded", "attempts": 1, "error": None},
        {"app_id": "b", "status": "failed", "attempts": 3, "error": "pg_dump: password=x1y2z3\n"},
        {"app_id": "c", "status": "running", "attempts": 1, "error": None},
    ]
    text = night_summary(date(2026, 11, 28), rows, night_status="running", note="window closed")
    assert text.splitlines() == [
        "backupctl night 2026-11-28: running — 3 apps: 1 running, 1 succeeded, 1 failed",
        "window closed",
        "- b: failed (attempt 3): pg_dump: password=***",
        "- c: running (attempt 1)",
    ]


def test_night_summary_mentions_a_backup_far_smaller_than_usual() -> None:
    rows = [
        {"app_id": "a", "status": "succeeded", "attempts": 1, "error": None, "warning": None},
        {
            "app_id": "shop",
            "status": "succeeded",
            "attempts": 1,
            "error": None,
            "warning": "12.0 KB, 6% of the usual 200.0 KB",
        },
    ]
    text = night_summary(date(2026, 11, 28), rows, night_status="complete")
    assert text.splitlines() == [
        "backupctl night 2026-11-28: complete — 2 apps: 2 succeeded",
        "- shop: succeeded, warning: 12.0 KB, 6% of the usual 200.0 KB",
    ]
