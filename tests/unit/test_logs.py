"""Log output: text by default (rich on a terminal), JSON when asked, levels, redaction."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from backupctl.logs import THIRD_PARTY, backup_extra, setup_logging

log = logging.getLogger("backupctl.test_logs")
ESC = "\x1b["
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave the root logger (and the library loggers) as they were."""
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at the console width
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in THIRD_PARTY}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, lib_level in levels.items():
        logging.getLogger(name).setLevel(lib_level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_app_and_backup_ids() -> None:
    out = io.StringIO()
    setup_logging(verbose=1, quiet=False, log_format="json", stream=out)
    log.info("attempt %d started", 2, extra=backup_extra("shop", 41))
    log.warning("no backup here")

    first, second = json_lines(out)
    assert first["app_id"] == "shop"
    assert first["backup_id"] == 41
    assert first["msg"] == "attempt 2 started"
    assert first["level"] == "INFO"
    assert first["logger"] == "backupctl.test_logs"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(first["ts"]))
    assert "app_id" not in second
    assert "backup_id" not in second
    assert "exc" not in second


def test_json_carries_the_exception() -> None:
    out = io.StringIO()
    setup_logging(verbose=0, quiet=False, log_format="json", stream=out)
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        log.exception("backup failed", extra=backup_extra("shop", 1))
    (line,) = json_lines(out)
    assert line["level"] == "ERROR"
    assert "RuntimeError: disk on fire" in str(line["exc"])
    assert str(line["exc"]).startswith("Traceback")


def test_the_default_off_a_terminal_is_plain_text_for_cron_mail() -> None:
    out = io.StringIO()
    setup_logging(verbose=0, quiet=False, log_format=None, stream=out)
    log.warning("hello", extra=backup_extra("wiki", 3))
    (line,) = out.getvalue().splitlines()
    assert ESC not in line
    assert "WARNING" in line and "hello" in line and "app=wiki backup=3" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_auto_is_rich_on_a_terminal() -> None:
    from rich.logging import RichHandler

    out = FakeTTY()
    setup_logging(verbose=0, quiet=False, log_format=None, stream=out)
    assert any(isinstance(h, RichHandler) for h in logging.getLogger().handlers)
    log.warning("lease was taken over", extra=backup_extra("shop", 7))
    assert ESC in out.getvalue()
    text = ANSI.sub("", out.getvalue())
    assert "WARNING" in text
    assert "lease was taken over" in text
    assert "app=shop backup=7" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_an_empty_no_color_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    out = FakeTTY()
    setup_logging(verbose=0, quiet=False, log_format=None, stream=out)
    log.warning("coloured")
    assert ESC in out.getvalue()


@pytest.mark.parametrize("log_format", [None, "text"])
def test_no_color_on_a_terminal_gives_plain_text(
    monkeypatch: pytest.MonkeyPatch, log_format: str | None
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = FakeTTY()
    setup_logging(verbose=0, quiet=False, log_format=log_format, stream=out)
    log.warning("failed: %s", "timeout", extra=backup_extra("shop", 7))
    text = out.getvalue()
    assert ESC not in text
    (line,) = text.splitlines()
    assert TEXT_LINE.match(line), line
    assert line.endswith("backupctl.test_logs: failed: timeout app=shop backup=7")


def test_text_off_a_terminal_is_plain() -> None:
    out = io.StringIO()
    setup_logging(verbose=0, quiet=False, log_format="text", stream=out)
    log.warning("plain", extra=backup_extra("shop", 7))
    (line,) = out.getvalue().splitlines()
    assert ESC not in line
    assert TEXT_LINE.match(line)


def test_json_wins_on_a_terminal() -> None:
    out = FakeTTY()
    setup_logging(verbose=0, quiet=False, log_format="json", stream=out)
    log.warning("as json")
    assert json_lines(out)[0]["msg"] == "as json"


def test_text_does_not_repeat_ids_the_message_names() -> None:
    out = io.StringIO()
    setup_logging(verbose=0, quiet=False, log_format="text", stream=out)
    log.warning("app %s backup %s: failed", "shop", 7, extra=backup_extra("shop", 7))
    log.warning("app %s: backup 70 failed", "shop", extra=backup_extra("shop", 7))
    first, second = out.getvalue().splitlines()
    assert first.endswith("app shop backup 7: failed")
    assert second.endswith("app shop: backup 70 failed backup=7")


@pytest.mark.parametrize(
    ("verbose", "levels"),
    [
        (0, ["WARNING", "ERROR", "CRITICAL"]),
        (1, ["INFO", "WARNING", "ERROR", "CRITICAL"]),
        (2, ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    ],
)
def test_verbosity_levels(verbose: int, levels: list[str]) -> None:
    out = io.StringIO()
    setup_logging(verbose=verbose, quiet=False, log_format="json", stream=out)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        log.log(level, "at %s", logging.getLevelName(level))
    assert [line["level"] for line in json_lines(out)] == levels


@pytest.mark.parametrize("verbose", [0, 2])
def test_quiet_keeps_only_errors(verbose: int) -> None:
    out = io.StringIO()
    setup_logging(verbose=verbose, quiet=True, log_format="json", stream=out)
    log.debug("debug")
    log.info("info")
    log.warning("warning")
    logging.getLogger("botocore.credentials").warning("library warning")
    log.error("backup failed", extra=backup_extra("shop", 7))
    log.critical("critical")
    assert [line["msg"] for line in json_lines(out)] == ["backup failed", "critical"]


@pytest.mark.parametrize("verbose", [0, 1])
def test_libraries_stay_at_warning_unless_vv(verbose: int) -> None:
    out = io.StringIO()
    setup_logging(verbose=verbose, quiet=False, log_format="json", stream=out)
    for name in (*THIRD_PARTY, "some.other.library"):
        logging.getLogger(name).info("%s info", name)
        logging.getLogger(f"{name}.sub").debug("%s debug", name)
    logging.getLogger("botocore").warning("botocore warning")
    assert [line["msg"] for line in json_lines(out)] == ["botocore warning"]


def test_vv_shows_library_debug() -> None:
    out = io.StringIO()
    setup_logging(verbose=2, quiet=False, log_format="json", stream=out)
    logging.getLogger("botocore.endpoint").debug("sending request")
    logging.getLogger("urllib3").info("new connection")
    logging.getLogger("some.other.library").debug("other")
    assert [line["msg"] for line in json_lines(out)] == [
        "sending request",
        "new connection",
        "other",
    ]


def test_rerunning_at_a_lower_verbosity_quiets_libraries_again() -> None:
    out = io.StringIO()
    setup_logging(verbose=2, quiet=False, log_format="json", stream=out)
    setup_logging(verbose=0, quiet=False, log_format="json", stream=out)
    logging.getLogger("botocore").info("hidden")
    assert logging.getLogger("botocore").level == logging.WARNING
    assert out.getvalue() == ""


SECRET = "hunter2xyz"


@pytest.mark.parametrize("log_format", ["json", "text", "rich"])
def test_secrets_are_masked_in_every_format(
    monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    out: io.StringIO = FakeTTY() if log_format == "rich" else io.StringIO()
    setup_logging(
        verbose=0,
        quiet=False,
        log_format=None if log_format == "rich" else log_format,
        stream=out,
    )
    url = f"postgresql://bob:{SECRET}@db.internal/app"
    log.warning("cannot connect to %s", url, extra=backup_extra("shop", 7))
    log.warning("literal postgresql://bob:%s@db/app password=%s", SECRET, SECRET)
    try:
        raise ConnectionError(f"connection to {url} refused")
    except ConnectionError:
        log.exception("ledger unreachable")
    text = ANSI.sub("", out.getvalue())
    assert SECRET not in text
    assert "postgresql://bob:***@db.internal/app" in text
    assert "password=***" in text
    assert "ConnectionError" in text
    if log_format == "rich":
        assert ESC in out.getvalue()
    if log_format == "json":
        assert len(json_lines(out)) == 3


@pytest.mark.parametrize("log_format", ["json", "text", "rich"])
def test_calling_setup_twice_does_not_duplicate_lines(log_format: str) -> None:
    out: io.StringIO = FakeTTY() if log_format == "rich" else io.StringIO()
    chosen = None if log_format == "rich" else log_format
    setup_logging(verbose=0, quiet=False, log_format=chosen, stream=out)
    setup_logging(verbose=0, quiet=False, log_format=chosen, stream=out)
    log.warning("only once")
    assert out.getvalue().count("only once") == 1
    assert sum(h.get_name() == "backupctl" for h in logging.getLogger().handlers) == 1


def test_default_stream_is_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging(verbose=0, quiet=False, log_format="json")
    log.warning("one")
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)  # as CliRunner does between invocations
    log.warning("two")
    assert [line["msg"] for line in json_lines(first)] == ["one"]
    assert [line["msg"] for line in json_lines(second)] == ["two"]


def test_a_bad_log_call_is_still_written() -> None:
    # Called directly: pytest's own capture handler would raise on this record first.
    out = io.StringIO()
    setup_logging(verbose=0, quiet=False, log_format="json", stream=out)
    record = log.makeRecord(log.name, logging.WARNING, __file__, 1, "two %s %s", ("one",), None)
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "backupctl"]
    handler.handle(record)
    (line,) = json_lines(out)
    assert str(line["msg"]).startswith("two %s %s")


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="log format"):
        setup_logging(verbose=0, quiet=False, log_format="xml")


def test_rich_is_not_imported_until_used() -> None:
    code = "import sys, backupctl.logs; print('rich' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
