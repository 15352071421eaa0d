"""Monitoring: healthchecks-style pings and a Prometheus textfile of the night's metrics.

Neither may fail a backup run: a ping or metrics problem logs one warning and moves on.
The ping URL is a secret (its path is the check's key), so it is only ever shown as
scheme and host. urllib and prometheus_client are imported only when used, so
importing this module costs the CLI nothing.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from backupctl import __version__
from backupctl.atomic import write_atomically
from backupctl.redact import redact_text

if TYPE_CHECKING:
    from urllib.request import OpenerDirector

log = logging.getLogger(__name__)

# The states of a backup row and of a night, in the order they are shown.
BACKUP_STATUSES = ("pending", "enqueued", "running", "succeeded", "failed", "pruned", "skipped")
NIGHT_STATUSES = ("running", "complete", "incomplete", "missed")

MAX_BODY_BYTES = 10_000

# -- pings ----------------------------------------------------------------------------


def shown_ping_url(url: str) -> str:
    """The ping URL as it may be shown: scheme and host only (the path is the secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "the ping URL"
    if not parts.scheme or not host:
        return "the ping URL"
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}/…"


def ping_url_problem(url: str) -> str | None:
    """Why `url` can't be a ping URL (for config validation), or None if it can."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    return None


def _secrets_of(url: str) -> list[str]:
    """Parts of the ping URL that must never be shown: itself, its path, query and password,
    and each long path segment (a UUID or ping key; short ones such as a slug may be
    ordinary words)."""
    found = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    found += [parts.path, parts.query, parts.password or "", unquote(parts.password or "")]
    found += [segment for segment in parts.path.split("/") if len(segment) >= 16]
    return sorted((s for s in found if s and len(s) >= 3), key=len, reverse=True)


def _endpoint(url: str, suffix: str) -> str:
    """`url` with `/suffix` appended to its path (its query string kept)."""
    if not suffix:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + suffix))


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """`url` without user:password@, and the Basic Authorization header they make (or None):
    urllib does not send credentials written in a URL by itself."""
    try:
        parts = urlsplit(url)
        if parts.username is None:
            return url, None
        host = parts.netloc.rsplit("@", 1)[1]
    except (ValueError, IndexError):
        return url, None
    user = unquote(parts.username)
    password = unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def _body_bytes(body: str, limit: int) -> bytes:
    data = body.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    # Cut at a character boundary.
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


class _PingFailed(Exception):
    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class Pinger:
    """Pings a healthchecks.io-style URL: `/start`, the plain URL (success) and `/fail`.

    With no URL every call does nothing. A ping is retried on connection errors, 429 and
    5xx answers; one that still fails logs a warning (showing scheme and host only) and
    returns False. Nothing here raises.
    """

    def __init__(
        self,
        ping_url: str | None,
        *,
        timeout: float = 10.0,
        tries: int = 3,
        backoff: float = 0.5,
        max_body: int = MAX_BODY_BYTES,
        secrets: Iterable[str] = (),
    ) -> None:
        """`backoff` is the wait after the first failed try; it doubles after each next one.
        `secrets` are extra values masked in the bodies sent and in log messages."""
        self.url = ping_url or None
        self.timeout = timeout
        self.tries = max(1, tries)
        self.backoff = backoff
        self.max_body = max_body
        self._secrets = [*(_secrets_of(ping_url) if ping_url else []), *secrets]
        self._shown = shown_ping_url(ping_url) if ping_url else ""
        self._target, self._authorization = _split_userinfo(ping_url or "")
        if self._authorization:
            self._secrets.append(self._authorization.split()[1])
        self._opener: OpenerDirector | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def start(self, body: str = "") -> bool:
        """Signal that the job started (POST `<url>/start`)."""
        return self._ping("start", body)

    def success(self, body: str = "") -> bool:
        """Signal success (POST `<url>`)."""
        return self._ping("", body)

    def fail(self, body: str = "") -> bool:
        """Signal failure (POST `<url>/fail`)."""
        return self._ping("fail", body)

    def finish(self, ok: bool, body: str = "") -> bool:
        """`success(body)` if `ok`, else `fail(body)`."""
        return self.success(body) if ok else self.fail(body)

    def _ping(self, suffix: str, body: str) -> bool:
        """Send one ping with retries; True if it was delivered. Never raises."""
        if self.url is None:
            return True
        what = f"{suffix} ping" if suffix else "success ping"
        try:
            problem = ping_url_problem(self.url)
            if problem:
                raise _PingFailed(f"the ping URL {problem}", retry=False)
            data = _body_bytes(redact_text(body, self._secrets), self.max_body)
            self._send(_endpoint(self._target, suffix), data, what)
            return True
        except _PingFailed as exc:
            reason = exc.reason
        except Exception as exc:  # a ping must never fail the run
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("%s to %s failed: %s", what, self._shown, redact_text(reason, self._secrets))
        return False

    def _send(self, url: str, data: bytes, what: str) -> None:
        deadline = time.monotonic() + self.timeout * self.tries
        deadline += sum(self.backoff * 2**i for i in range(self.tries - 1))
        wait = self.backoff
        for attempt in range(1, self.tries + 1):
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise _PingFailed("timed out", retry=False)
                self._post_once(url, data, min(self.timeout, remaining))
                return
            except _PingFailed as exc:
                if not exc.retry:
                    raise
                if attempt == self.tries:
                    tries = f" ({attempt} tries)" if attempt > 1 else ""
                    raise _PingFailed(exc.reason + tries, retry=False) from None
                log.debug(
                    "%s to %s: try %d failed (%s); retrying in %.1fs",
                    what,
                    self._shown,
                    attempt,
                    redact_text(exc.reason, self._secrets),
                    wait,
                )
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
            wait *= 2

    def _post_once(self, url: str, data: bytes, timeout: float) -> None:
        import http.client
        import urllib.error
        import urllib.request

        if self._opener is None:  # proxies (https_proxy, no_proxy) are read here, once
            self._opener = urllib.request.build_opener()
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "User-Agent": f"backupctl/{__version__}",
        }
        if self._authorization:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)
        try:
            # Once the status line says the ping arrived, the rest of the answer doesn't matter.
            with (
                self._opener.open(request, timeout=timeout) as response,
                contextlib.suppress(OSError, http.client.HTTPException),
            ):
                response.read(1024)
        except urllib.error.HTTPError as exc:
            exc.close()
            retry = exc.code >= 500 or exc.code == 429
            raise _PingFailed(f"HTTP {exc.code} {exc.reason}", retry) from None
        except urllib.error.URLError as exc:
            raise _PingFailed(_reason(exc.reason), retry=True) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _PingFailed(_reason(exc), retry=True) from None


def _reason(error: object) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    return text or type(error).__name__


def night_summary(
    run_date: date,
    rows: Sequence[Mapping[str, Any]],
    *,
    night_status: str | None = None,
    note: str | None = None,
    max_listed: int = 50,
) -> str:
    """A short plain-text account of a night for a ping body: counts, then what isn't done."""
    counts = Counter(str(row["status"]) for row in rows)
    shown = [s for s in BACKUP_STATUSES if counts[s]] + sorted(
        s for s in counts if s not in BACKUP_STATUSES
    )
    head = f"backupctl night {run_date.isoformat()}"
    if night_status:
        head += f": {night_status}"
    tally = ", ".join(f"{counts[s]} {s}" for s in shown) or "nothing planned"
    lines = [f"{head} — {len(rows)} apps: {tally}"]
    if note:
        lines.append(note)
    unfinished = [row for row in rows if row["status"] not in ("succeeded", "pruned")]
    for row in unfinished[:max_listed]:
        line = f"- {row['app_id']}: {row['status']}"
        if row.get("attempts"):
            line += f" (attempt {row['attempts']})"
        error = str(row.get("error") or "").strip()
        if error:
            line += ": " + error.splitlines()[0][:200]
        lines.append(line)
    if len(unfinished) > max_listed:
        lines.append(f"… and {len(unfinished) - max_listed} more")
    # Succeeded, so the ping still says success; but a sudden shrink should be heard.
    warned = [row for row in rows if row["status"] == "succeeded" and row.get("warning")]
    for row in warned[:max_listed]:
        lines.append(f"- {row['app_id']}: succeeded, warning: {row['warning']}")
    if len(warned) > max_listed:
        lines.append(f"… and {len(warned) - max_listed} more warnings")
    return redact_text("\n".join(lines) + "\n")


# -- metrics --------------------------------------------------------------------------


def _timestamp(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _midnight_utc(day: date) -> float:
    return datetime.combine(day, dt_time(0), tzinfo=UTC).timestamp()


def write_metrics(
    path: str | os.PathLike[str],
    *,
    run_date: date,
    night_rows: Sequence[Mapping[str, Any]],
    last_successes: Mapping[str, Mapping[str, Any]],
    night_status: str | None,
    app_ids: Iterable[str] | None = None,
    nights: Sequence[Mapping[str, Any]] | None = None,
    now: float | None = None,
    drills: Mapping[str, Mapping[str, Any]] | None = None,
) -> bool:
    """Write the night's metrics to `path` in the textfile-collector format, atomically.

    `night_rows` are `Ledger.night_backups(run_date)`, `last_successes` is
    `Ledger.last_successes(ids)`, `night_status` is the night's `nightly_runs` status
    (None if it has no row). `app_ids` are the apps judged, the registry's enabled ones
    (None: the night's planned apps): each gets its last-success timestamp, 0 if it never
    succeeded. Apps that left the registry get none, so an alert on the timestamp's age
    forgets them. `nights` (optional, `Ledger.list_nights(n)`) adds the newest complete
    night. `drills` (optional, `Ledger.latest_drills(ids)`) adds each app's latest
    passed drill and the duration of its latest drill. Returns whether the file was
    written; never raises.
    """
    try:
        _write_metrics(
            os.fspath(path),
            run_date=run_date,
            night_rows=night_rows,
            last_successes=last_successes,
            night_status=night_status,
            app_ids=app_ids,
            nights=nights,
            now=time.time() if now is None else now,
            drills=drills,
        )
        return True
    except Exception as exc:  # metrics must never fail a backup run
        reason = redact_text(str(exc).strip() or type(exc).__name__)
        log.warning("could not write metrics to %s: %s", os.fspath(path), reason)
        return False


def _write_metrics(
    path: str,
    *,
    run_date: date,
    night_rows: Sequence[Mapping[str, Any]],
    last_successes: Mapping[str, Mapping[str, Any]],
    night_status: str | None,
    app_ids: Iterable[str] | None,
    nights: Sequence[Mapping[str, Any]] | None,
    now: float,
    drills: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    rows = [row for row in night_rows if row.get("trigger", "nightly") == "nightly"]

    last = Gauge(
        "backupctl_last_success_timestamp_seconds",
        "Unix time the app's latest succeeded backup (nightly or ad hoc) finished; 0: never. "
        "Only apps enabled in the registry.",
        ["app"],
        registry=registry,
    )
    if app_ids is None:  # a skipped row's app had left the registry
        app_ids = (str(row["app_id"]) for row in rows if row["status"] != "skipped")
    for app in sorted(set(app_ids)):
        success = last_successes.get(app)
        finished = success.get("finished_at") if success else None
        last.labels(app=app).set(_timestamp(finished) if isinstance(finished, datetime) else 0)

    by_status = Gauge(
        "backupctl_backups",
        "The night's nightly backups by status.",
        ["status"],
        registry=registry,
    )
    counts = Counter(str(row["status"]) for row in rows)
    for status in (*BACKUP_STATUSES, *sorted(set(counts) - set(BACKUP_STATUSES))):
        by_status.labels(status=status).set(counts[status])

    duration = Gauge(
        "backupctl_backup_duration_seconds",
        "Seconds the app's succeeded nightly backup of the night took.",
        ["app"],
        registry=registry,
    )
    size = Gauge(
        "backupctl_backup_size_bytes",
        "Bytes stored by the app's succeeded nightly backup of the night.",
        ["app"],
        registry=registry,
    )
    for row in rows:
        if row["status"] != "succeeded":
            continue
        if row.get("duration_s") is not None:
            duration.labels(app=str(row["app_id"])).set(float(row["duration_s"]))
        if row.get("size_bytes") is not None:
            size.labels(app=str(row["app_id"])).set(float(row["size_bytes"]))

    Gauge(
        "backupctl_night_timestamp_seconds",
        "The night these metrics describe: its date at midnight UTC, as Unix time.",
        registry=registry,
    ).set(_midnight_utc(run_date))
    Gauge(
        "backupctl_night_complete",
        "1 if every backup of the night succeeded, else 0.",
        registry=registry,
    ).set(1 if night_status == "complete" else 0)
    state = Gauge(
        "backupctl_night_status",
        "The night's status: 1 for the one it is in, 0 for the others.",
        ["status"],
        registry=registry,
    )
    known = [*NIGHT_STATUSES]
    if night_status is not None and night_status not in known:
        known.append(night_status)
    for status in known:
        state.labels(status=status).set(1 if status == night_status else 0)

    if nights is not None:
        complete = [n["run_date"] for n in nights if n["status"] == "complete"]
        Gauge(
            "backupctl_last_complete_night_timestamp_seconds",
            "The newest complete night among the latest ones: midnight UTC, Unix time; 0: none.",
            registry=registry,
        ).set(_midnight_utc(max(complete)) if complete else 0)

    if drills is not None:
        _drill_metrics(registry, drills)

    Gauge(
        "backupctl_metrics_written_timestamp_seconds",
        "Unix time this file was written.",
        registry=registry,
    ).set(now)

    # Not prometheus_client's write_to_textfile: its temporary name is predictable
    # and opened without O_EXCL, so a planted link there would be written through.
    write_atomically(Path(path), generate_latest(registry))


def _drill_metrics(registry: Any, drills: Mapping[str, Mapping[str, Any]]) -> None:
    from prometheus_client import Gauge

    passed = Gauge(
        "backupctl_last_drill_success_timestamp_seconds",
        "Unix time the app's latest passed drill (backupctl drill) finished; 0: never.",
        ["app"],
        registry=registry,
    )
    duration = Gauge(
        "backupctl_drill_duration_seconds",
        "Seconds the app's latest drill took (passed or failed).",
        ["app"],
        registry=registry,
    )
    for app in sorted(drills):
        latest = drills[app]
        at = latest.get("last_passed_at")
        passed.labels(app=app).set(_timestamp(at) if isinstance(at, datetime) else 0)
        if latest.get("last_duration_s") is not None:
            duration.labels(app=app).set(float(latest["last_duration_s"]))
