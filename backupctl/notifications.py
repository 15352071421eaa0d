"""Notifications through Apprise: one message per night and event, to each notify URL.

The events of a night: `failure` (it ended with backups failed or not done),
`missed` (no run-nightly ran it), `warning` (backups that succeeded but look wrong)
and `recovered` (the first complete night after one that failed or was missed).
Whoever ends a night tells of it: run-nightly, the worker that finishes its last
backup, retry when its round ends, and check once the night's window has closed
(the only one that can tell of a missed night). The ledger makes that one message:
each (night, event, URL) is claimed with one compare-and-set statement before it is
sent and marked sent after.

A notify URL is a secret: it is shown as its scheme and host at most, never logged,
and the ledger keeps only a hash of it. A notification that fails logs a warning and
never changes an exit code. Apprise is imported only when a URL is checked or a
message is sent.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backupctl.redact import redact_text
from backupctl.wording import one_line, plural

if TYPE_CHECKING:
    from backupctl.config import Settings
    from backupctl.ledger import Ledger

log = logging.getLogger(__name__)

EVENTS = ("failure", "missed", "warning", "recovered")
INSTALL_HINT = "pip install 'backupctl[notify]'"
# A claim older than this is a sender that died mid-send: the next sender takes it over.
# (Minutes: an Apprise send that is merely slow must not be sent twice.)
STALE_CLAIM = 600.0
MAX_LISTED = 20  # apps named in one message; the rest are counted
MAX_ERROR = 300  # characters of one app's error in a message
_OPEN = ("pending", "enqueued", "running")


# -- URLs -------------------------------------------------------------------------


def url_hash(url: str) -> str:
    """What the ledger keeps of a notify URL (the URL itself is a secret)."""
    return hashlib.sha256(b"backupctl-notify\0" + url.encode("utf-8")).hexdigest()[:32]


def _shown_host(url: str) -> str | None:
    """The URL's host as it may be shown, or None: many Apprise URLs keep a token
    where a host would be (slack://TOKEN/...), so only a name with a dot, an
    address or localhost is shown."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or not ("." in host or ":" in host or host == "localhost"):
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def shown_notify_url(url: str) -> str:
    """A notify URL as it may be shown: 'slack://…', 'mailto://smtp.example.com/…'."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return "a notify URL"
    host = _shown_host(url)
    return f"{scheme.lower()}://{host}/…" if host else f"{scheme.lower()}://…"


def _url_secrets(url: str) -> list[str]:
    """The parts of a notify URL that must never be shown (to mask in reasons)."""
    found = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    found += [parts.netloc, parts.path, parts.query, parts.password or ""]
    found += [p for p in parts.path.split("/") if len(p) >= 4]
    found += [kv.split("=", 1)[-1] for kv in parts.query.split("&")]
    if _shown_host(url) is None:
        found.append(parts.netloc.rsplit("@", 1)[-1])
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


@contextmanager
def _quiet_apprise() -> Iterator[list[logging.LogRecord]]:
    """Keep Apprise's own log lines (which may name a URL's parts) out of our output,
    and collect them: the last of them says why a send failed."""
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    logger = logging.getLogger("apprise")
    with _APPRISE_LOCK:
        logger.propagate = False  # for good: what Apprise says reaches us only as a reason
        logger.addHandler(handler)
        try:
            yield records
        finally:
            logger.removeHandler(handler)


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)


# One Apprise call at a time in a process: its logger is shared (worker threads).
_APPRISE_LOCK = threading.Lock()


def notify_url_problems(urls: Sequence[str]) -> list[str]:
    """What is wrong with [monitoring] notify, one line each: Apprise is not
    installed, or a URL is not one Apprise can send to (every bad one, at once)."""
    if not urls:
        return []
    try:
        import apprise
    except ImportError:
        return [f"needs Apprise, which is not installed: {INSTALL_HINT}"]
    problems = []
    with _quiet_apprise():
        for number, url in enumerate(urls, 1):
            try:
                known = apprise.Apprise.instantiate(url) is not None
            except Exception:  # a plugin that chokes on the URL: not one it can send to
                known = False
            if not known:
                problems.append(
                    f"URL {number} ({shown_notify_url(url)}) is not one Apprise can send to: "
                    "check its scheme and fields against Apprise's list of services"
                )
    return problems


# -- the events of a night, and their messages ---------------------------------------


def night_events(
    night_row: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]],
    before: Mapping[str, Any] | None,
    *,
    window_closed: bool,
) -> list[str]:
    """The events a night has to tell of, in EVENTS order.

    Before its window has closed (`window_closed` False) a night tells only once it
    has ended (complete or incomplete); a night with no run, or marked missed, is
    told only after its window. `before` is Ledger.night_before (for `recovered`).
    """
    if night_row is None or night_row["status"] == "missed":
        return ["missed"] if window_closed else []
    status = str(night_row["status"])
    if status == "running" and not window_closed:
        return []  # still going: whoever ends it tells
    if status == "running" and any(
        r["status"] == "running" and r.get("lease_expired") is False for r in rows
    ):
        # A backup that started in the window may run past it: its holder is alive, so
        # whoever ends the night tells; if the holder dies, its lease runs out first.
        return []
    events = []
    not_done = [r for r in rows if r["status"] == "failed" or r["status"] in _OPEN]
    if status != "complete" and (not_done or status == "incomplete"):
        events.append("failure")
    if any(
        r["status"] == "succeeded" and (r.get("warning") or r.get("hook_warning")) for r in rows
    ):
        events.append("warning")
    if status == "complete" and before is not None and before.get("bad"):
        events.append("recovered")
    return events


@dataclass(frozen=True)
class Message:
    """One notification: its Apprise type is failure, warning or success."""

    event: str
    title: str
    body: str
    kind: str


def _error(row: Mapping[str, Any]) -> str:
    text = one_line(redact_text(str(row.get("error") or "").strip()))
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _listed(lines: list[str], total: int) -> list[str]:
    shown = lines[:MAX_LISTED]
    if total > MAX_LISTED:
        shown.append(f"… and {total - MAX_LISTED} more")
    return shown


def _failed_line(row: Mapping[str, Any]) -> str:
    status = str(row["status"])
    if status == "failed":
        attempts = int(row.get("attempts") or 0)
        line = f"- {row['app_id']}: failed" + (
            f" after {plural(attempts, 'attempt')}" if attempts else ""
        )
        error = _error(row)
        return line + (f": {error}" if error else "")
    if status == "running":
        why = "stuck: its process died" if row.get("lease_expired") else "still running"
        return f"- {row['app_id']}: {why} after the window closed"
    return f"- {row['app_id']}: {status}, not started"


def compose(
    event: str,
    night: date,
    rows: Sequence[Mapping[str, Any]],
    *,
    host: str,
    before: Mapping[str, Any] | None = None,
    window: str | None = None,
) -> Message:
    """The message of one event of a night: a title, the apps concerned with their
    errors (redacted, truncated), and the command to run next."""
    apps = [r for r in rows if r["status"] != "skipped"]
    total = len(apps)
    details = f"Details: backupctl status --date {night}"
    if event == "failure":
        failed = [r for r in apps if r["status"] == "failed"]
        open_ = [r for r in apps if r["status"] in _OPEN]
        if failed and open_:
            what = f"{len(failed)} of {total} apps failed, {len(open_)} not done"
        elif failed:
            what = f"{len(failed)} of {total} apps failed"
        else:
            what = f"{len(open_)} of {total} apps not backed up"
        done = sum(1 for r in apps if r["status"] in ("succeeded", "pruned"))
        lines = [f"Night {night} on {host}: {done} of {total} apps backed up.", ""]
        lines += _listed([_failed_line(r) for r in failed + open_], len(failed) + len(open_))
        lines.append("")
        if failed:
            lines.append(f"Next: backupctl retry --date {night}")
        if open_:
            lines.append(f"{'Then' if failed else 'Next'}: backupctl run-nightly --date {night}")
        lines.append(details)
        return Message(event, f"backupctl: {what} on {night} ({host})", "\n".join(lines), "failure")
    if event == "missed":
        when = f" within its window ({window})" if window else ""
        lines = [
            f"No run-nightly ran night {night}{when}: no app was backed up that night.",
            "",
            f"Next: backupctl run-nightly --date {night}",
            "Details: backupctl runs",
        ]
        return Message(
            event, f"backupctl: night {night} was missed ({host})", "\n".join(lines), "failure"
        )
    if event == "warning":
        warned = []
        for r in apps:
            if r["status"] != "succeeded":
                continue
            if r.get("warning"):
                warned.append(f"- {r['app_id']}: succeeded, but {one_line(str(r['warning']))}")
            if r.get("hook_warning"):
                hook = one_line(redact_text(str(r["hook_warning"])))[:MAX_ERROR]
                warned.append(f"- {r['app_id']}: succeeded, but its {hook}")
        count = sum(
            1
            for r in apps
            if r["status"] == "succeeded" and (r.get("warning") or r.get("hook_warning"))
        )
        lines = [f"Night {night} on {host}: backups that succeeded but need a look.", ""]
        lines += _listed(warned, len(warned))
        lines += ["", f"Next: backupctl status --date {night}"]
        title = f"backupctl: {count} of {total} backups on {night} need a look ({host})"
        return Message(event, title, "\n".join(lines), "warning")
    if event == "recovered":
        earlier = before or {}
        how = "was missed" if earlier.get("status") == "missed" else "failed"
        lines = [
            f"Night {night} on {host} is complete: {total} of {total} apps backed up.",
            f"The night before it, {earlier.get('run_date', 'the last one')}, {how}.",
            "",
            details,
        ]
        title = f"backupctl: night {night} complete again, {total} of {total} apps ({host})"
        return Message(event, title, "\n".join(lines), "success")
    raise ValueError(f"unknown notification event {event!r}")


# -- sending ----------------------------------------------------------------------

# The seam to Apprise: send one message to one URL; None when delivered, else why not.
Sender = Callable[[str, Message], "str | None"]


def apprise_send(url: str, message: Message) -> str | None:
    """Send `message` to `url` through Apprise; None when delivered, else why not."""
    try:
        import apprise
    except ImportError:
        return f"Apprise is not installed: {INSTALL_HINT}"
    kinds = {
        "failure": apprise.NotifyType.FAILURE,
        "warning": apprise.NotifyType.WARNING,
        "success": apprise.NotifyType.SUCCESS,
    }
    with _quiet_apprise() as records:
        service = apprise.Apprise.instantiate(url)
        if service is None:
            return "Apprise can't load this URL"
        sender = apprise.Apprise()
        sender.add(service)
        delivered = sender.notify(
            body=message.body,
            title=message.title,
            notify_type=kinds.get(message.kind, apprise.NotifyType.INFO),
            body_format=apprise.NotifyFormat.TEXT,
        )
    if delivered:
        return None
    said = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    return one_line(said[-1])[:300] if said else "Apprise could not deliver it"


@dataclass(frozen=True)
class Told:
    """One notification this process tried: what, to where (shown form), and whether."""

    event: str
    url: str
    sent: bool


def _owner() -> str:
    # One per claim: two threads of a worker closing the same night never share one.
    return f"{socket.gethostname()}:{secrets.token_hex(8)}"


class Notifier:
    """Tells the notify URLs about a night's events, each once (see the module doc)."""

    def __init__(
        self,
        urls: Sequence[str],
        notify_on: Sequence[str] = ("failure", "missed", "recovered"),
        *,
        sender: Sender = apprise_send,
        host: str | None = None,
        window: str | None = None,
        stale_after: float = STALE_CLAIM,
    ) -> None:
        self.urls = tuple(urls)
        self.notify_on = tuple(notify_on)
        self._send = sender
        self._host = host or socket.gethostname()
        self._window = window
        self._stale_after = stale_after

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        window = f"{settings.run.window} {settings.timezone.key}"
        return cls(settings.notify, settings.notify_on, window=window)

    @property
    def enabled(self) -> bool:
        return bool(self.urls and self.notify_on)

    def tell(self, ledger: Ledger, night: date, *, window_closed: bool = False) -> list[Told]:
        """Send what `night` has to tell that nobody sent yet. Never raises: a failure
        is a warning (and the next sender retries it)."""
        if not self.enabled:
            return []
        told: list[Told] = []
        try:
            night_row = ledger.get_night(night)
            rows = ledger.night_backups(night) if night_row is not None else []
            before = ledger.night_before(night)
            events = night_events(night_row, rows, before, window_closed=window_closed)
            for event in (e for e in events if e in self.notify_on):
                message = compose(
                    event, night, rows, host=self._host, before=before, window=self._window
                )
                for url in self.urls:
                    result = self._tell_one(ledger, night, message, url)
                    if result is not None:
                        told.append(result)
        except Exception as exc:  # a notification must never fail the run
            reason = redact_text(str(exc).strip() or type(exc).__name__, self._secrets())
            log.warning("notifications of night %s: not sent: %s", night, reason)
        return told

    def _secrets(self) -> list[str]:
        return [s for url in self.urls for s in _url_secrets(url)]

    def _tell_one(self, ledger: Ledger, night: date, message: Message, url: str) -> Told | None:
        hashed, owner, shown = url_hash(url), _owner(), shown_notify_url(url)
        if not ledger.claim_notification(night, message.event, hashed, owner, self._stale_after):
            return None  # sent already, or being sent by another process
        try:
            reason = self._send(url, message)
        except Exception as exc:  # a bug in a service plugin is a failed send too
            reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            reason = redact_text(reason, _url_secrets(url))
        ledger.finish_notification(
            night, message.event, hashed, owner, sent=reason is None, error=reason
        )
        if reason is None:
            log.info("night %s: told %s to %s", night, message.event, shown)
        else:
            log.warning(
                "night %s: the %s notification to %s failed: %s (the next run or check "
                "tries again)",
                night,
                message.event,
                shown,
                reason,
            )
        return Told(message.event, shown, reason is None)
