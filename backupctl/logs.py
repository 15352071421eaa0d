"""Logging for the command line: readable lines (rich on a terminal), JSON lines when asked.

One entry point, :func:`setup_logging`, called once per CLI invocation (calling it again
replaces its own handler, so tests and ``CliRunner`` never see duplicate lines). Log calls
about one backup pass ``extra=backup_extra(app_id, backup_id)`` so every such line names
the app and the backup, in both formats.

Every record passes through :func:`backupctl.redact.redact_text` (a filter on the
handler) before it is formatted: the message, the exception text and the stack, so a
password that slips into a log call is masked whatever the format.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from backupctl.redact import redact_text

__all__ = ["LOG_FORMATS", "backup_extra", "setup_logging"]

LOG_FORMATS: Final = ("text", "json")

#: Loggers of libraries we use; they stay at WARNING unless -vv.
THIRD_PARTY: Final = ("pgserver", "botocore", "boto3", "s3transfer", "urllib3", "psycopg")

_HANDLER_NAME: Final = "backupctl"
_OWN_PREFIX: Final = "backupctl"


def backup_extra(app_id: str, backup_id: int) -> dict[str, object]:
    """The ``extra=`` for a log call about one backup: names its app and backup id."""
    return {"app_id": app_id, "backup_id": backup_id}


def setup_logging(
    *,
    verbose: int = 0,
    quiet: bool = False,
    log_format: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger for one run of the CLI.

    Where lines go and how they look:

    - ``stream`` is where log lines are written; ``None`` means ``sys.stderr``, looked up
      at each write (so a handler outlives ``CliRunner`` swapping ``sys.stderr``).
    - ``log_format="json"``: one JSON object per line, always.
    - ``log_format="text"``: readable lines; coloured (rich) only on a terminal with
      ``NO_COLOR`` unset or empty, plain text without escape codes otherwise.
    - ``log_format=None``: the same as ``"text"``. Cron mails what a job prints and a
      person reads it, so JSON is only ever asked for (``--log-format json`` or
      ``BACKUPCTL_LOG_FORMAT=json``, e.g. for a log shipper under Kubernetes).

    Levels (the threshold applies to the handler, so nothing below it is written):

    - default: WARNING and above;
    - ``verbose=1`` (``-v``): INFO and above;
    - ``verbose>=2`` (``-vv``): DEBUG and above, third-party libraries included;
    - ``quiet=True``: only ERROR and above; it wins over ``verbose``. The rule is by
      level alone: a failed backup (or night) is logged at ERROR, so ``--quiet`` shows
      exactly the failures; WARNINGs (retries, leases taken over, poison messages) are
      things the run handled itself, and are dropped.

    Third-party loggers (:data:`THIRD_PARTY`, and any logger outside ``backupctl``) only
    show WARNING and above unless ``verbose >= 2``.

    Calling this again replaces the handler it installed before; handlers installed by
    others (e.g. pytest's capture) are left alone.

    Raises:
        ValueError: ``log_format`` is not ``"text"``, ``"json"`` or ``None``.
    """
    if log_format is not None and log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    debug_all = verbose >= 2 and not quiet
    if quiet:
        threshold = logging.ERROR
    elif verbose >= 2:
        threshold = logging.DEBUG
    elif verbose == 1:
        threshold = logging.INFO
    else:
        threshold = logging.WARNING

    target = stream if stream is not None else sys.stderr
    on_terminal = _isatty(target)
    if log_format == "json":
        handler: logging.Handler = _LineHandler(stream)
        handler.setFormatter(JsonFormatter())
    elif on_terminal and not os.environ.get("NO_COLOR"):
        handler = _rich_handler(stream)
    else:
        handler = _LineHandler(stream)
        handler.setFormatter(TextFormatter())

    handler.set_name(_HANDLER_NAME)
    handler.setLevel(threshold)
    if not debug_all:
        handler.addFilter(_own_or_warning)
    handler.addFilter(RedactFilter())  # after the cheap filter: only what is written

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(
            logging.NOTSET if debug_all else max(logging.WARNING, threshold)
        )
    # The pool warns at each failed reconnection; the ledger's own warning says it once.
    logging.getLogger("psycopg.pool").setLevel(logging.NOTSET if debug_all else logging.ERROR)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _own_or_warning(record: logging.LogRecord) -> bool:
    """Records of other libraries below WARNING are noise unless -vv."""
    own = record.name == _OWN_PREFIX or record.name.startswith(_OWN_PREFIX + ".")
    return own or record.levelno >= logging.WARNING


class RedactFilter(logging.Filter):
    """The last line of defence: mask secrets in the message, exception and stack.

    It rewrites the record in place (``msg`` becomes the redacted, fully formatted
    message and ``args`` is emptied; ``exc_text`` and ``stack_info`` are redacted), so
    any formatter after it only sees masked text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad arguments for the format: log what we have, never raise
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact_text(message)
        record.args = ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact_text(
                "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            )
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def _ids(record: logging.LogRecord) -> tuple[object, object]:
    return getattr(record, "app_id", None), getattr(record, "backup_id", None)


def _id_suffix(record: logging.LogRecord, message: str) -> str:
    """`` app=<id> backup=<id>`` for what the message does not already say."""
    app_id, backup_id = _ids(record)
    parts = []
    if app_id is not None and not re.search(rf"\bapp[ =]{re.escape(str(app_id))}\b", message):
        parts.append(f"app={app_id}")
    if backup_id is not None and not re.search(
        rf"\bbackup[ =]{re.escape(str(backup_id))}\b", message
    ):
        parts.append(f"backup={backup_id}")
    return (" " + " ".join(parts)) if parts else ""


class TextFormatter(logging.Formatter):
    """Plain readable lines: ``2024-05-01 01:02:03 WARNING backupctl.executor: msg app=x``.

    With ``timestamps=False`` (rich shows its own time and level columns, the time in
    this formatter's ``datefmt``) only the message and the app/backup suffix are
    formatted.
    """

    def __init__(self, *, timestamps: bool = True) -> None:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if timestamps else "%(message)s"
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record) + _id_suffix(record, record.message)


class JsonFormatter(logging.Formatter):
    """One JSON object per line.

    Fields: ``ts`` (ISO 8601 UTC with milliseconds), ``level``, ``logger``, ``msg``;
    ``app_id`` and ``backup_id`` when the record carries them; ``exc`` (the traceback)
    and ``stack`` when present.
    """

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, tz=UTC)
        doc: dict[str, Any] = {
            "ts": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        app_id, backup_id = _ids(record)
        if app_id is not None:
            doc["app_id"] = app_id
        if backup_id is not None:
            doc["backup_id"] = backup_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, default=str, ensure_ascii=False)


class _LineHandler(logging.Handler):
    """Write one formatted record per line to `stream`, or to the current sys.stderr."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = self.stream
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _rich_handler(stream: TextIO | None) -> logging.Handler:
    """rich's RichHandler on a terminal (imported here: rich costs import time)."""
    from rich.console import Console
    from rich.logging import RichHandler

    # stderr=True without a file makes rich look sys.stderr up at each write.
    console = Console(file=stream, stderr=stream is None, force_terminal=True)
    handler = RichHandler(
        console=console,
        show_path=False,
        markup=False,  # messages hold user text such as "[run]": never parse it
        rich_tracebacks=False,  # the redacted exc_text is printed instead
    )
    handler.setFormatter(TextFormatter(timestamps=False))
    return handler
