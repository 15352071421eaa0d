"""Tell monitoring about a run: healthchecks-style pings, the Prometheus textfile and
the notifications (Apprise).

A monitoring failure is logged and never changes a run's outcome.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from backupctl.config import Settings
from backupctl.ledger import Ledger
from backupctl.monitoring import Pinger, night_summary, write_metrics
from backupctl.notifications import Notifier
from backupctl.redact import redact_text

log = logging.getLogger(__name__)

# How far back check tells of nights recorded as missed (besides the latest closed one).
MISSED_LOOKBACK = 7


class NightMonitor:
    """Pings /start when a run begins and success or /fail when it ends; then writes
    the metrics file, if one is configured, and notifies of a night that ended."""

    def __init__(self, settings: Settings, command: str) -> None:
        self._settings = settings
        self._command = command
        self._pinger = Pinger(settings.ping_url)

    def started(self, night: date) -> None:
        self._pinger.start(f"backupctl {self._command} {night} on {socket.gethostname()}")

    def died(self, night: date, exc: BaseException) -> None:
        """The run ended on an error before it could report: ping /fail with it."""
        reason = str(exc) or type(exc).__name__
        self._pinger.fail(f"backupctl {self._command} {night} stopped: {reason}")

    def finished(
        self,
        ledger: Ledger,
        night: date,
        *,
        ok: bool,
        rows: Sequence[Mapping[str, Any]],
        night_status: str | None,
        app_ids: Sequence[str],
        note: str | None = None,
        ping: bool = True,
    ) -> None:
        """Ping success or /fail (unless `ping` is False: the workers will), write
        the metrics file, and notify if the night has ended (a night still running
        is told by whoever ends it)."""
        if ping:
            summary = night_summary(night, rows, night_status=night_status, note=note)
            self._pinger.finish(ok, summary)
        write_night_metrics(self._settings, ledger, night, rows, night_status, app_ids)
        if night_status in ("complete", "incomplete"):
            notify_night(self._settings, ledger, night)


def write_night_metrics(
    settings: Settings,
    ledger: Ledger,
    night: date,
    rows: Sequence[Mapping[str, Any]],
    night_status: str | None,
    app_ids: Sequence[str],
) -> None:
    """Write the metrics file for `night`, if [monitoring] metrics_file is set."""
    if not settings.metrics_file:
        return
    write_metrics(
        settings.metrics_file,
        run_date=night,
        night_rows=rows,
        last_successes=ledger.last_successes(list(app_ids)),
        night_status=night_status,
        app_ids=app_ids,
        nights=ledger.list_nights(7),
        drills=ledger.latest_drills(list(app_ids)),
    )


def night_closed(settings: Settings, ledger: Ledger, night: date, app_ids: Sequence[str]) -> None:
    """A worker finished a night's last backup: ping how the night ended (enqueue
    mode's run-nightly only pinged /start), refresh the metrics file and notify."""
    row = ledger.get_night(night)
    status = str(row["status"]) if row else None
    rows = ledger.night_backups(night)
    Pinger(settings.ping_url).finish(
        status == "complete", night_summary(night, rows, night_status=status)
    )
    write_night_metrics(settings, ledger, night, rows, status, app_ids)
    notify_night(settings, ledger, night)


def notify_night(
    settings: Settings, ledger: Ledger, night: date, *, window_closed: bool = False
) -> None:
    """Send the notifications `night` has that nobody sent yet, if [monitoring]
    notify is set (`window_closed`: check, past the night's window). Never raises."""
    Notifier.from_settings(settings).tell(ledger, night, window_closed=window_closed)


def notify_closed_nights(
    settings: Settings, ledger: Ledger, night: date, *, window_open: bool
) -> None:
    """check's dead-man's switch: tell of the latest night whose window has closed
    (`night` itself, or while its window is open the night before: a whole-day
    window is always open, so its night is told of the day after) if it was missed
    or ended badly with nobody telling, and of the nights a later run recorded as
    missed (the machine was off), a week back. Each is sent once. Never raises."""
    if not settings.notify:
        return
    from backupctl.checks import latest_closed_night

    closed = night
    if window_open:
        closed = latest_closed_night(datetime.now(UTC), settings.run.window, settings.timezone)
    try:
        earlier = [
            n["run_date"]
            for n in ledger.list_nights(MISSED_LOOKBACK + 1)
            if n["status"] == "missed"
            and closed - timedelta(days=MISSED_LOOKBACK) <= n["run_date"] < closed
        ]
    except Exception as exc:  # a notification must never change check's answer
        log.warning("notifications: the earlier nights were not read: %s", redact_text(str(exc)))
        earlier = []
    for told in [*sorted(earlier), closed]:
        notify_night(settings, ledger, told, window_closed=True)
