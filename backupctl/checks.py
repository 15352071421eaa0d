"""backupctl check: is the night complete? A dead-man's switch with Nagios states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from backupctl.durations import Window, format_duration
from backupctl.nights import night_for, window_bounds

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def night_to_check(now: datetime, window: Window, tz: ZoneInfo) -> tuple[date, bool]:
    """The night `check` judges, and whether its window is still open: tonight's while
    its window is open, else the latest night whose window has closed."""
    current = night_for(now, window, tz)
    if current is not None:
        return current, True
    today = now.astimezone(tz).date()
    for back in range(3):
        night = today - timedelta(days=back)
        if window_bounds(night, window, tz)[1] <= now:
            return night, False
    raise AssertionError("some night's window closed within three days")


@dataclass
class AppVerdict:
    app_id: str
    status: str  # the app's nightly row status, or "missing"
    attempts: int
    last_success: datetime | None
    problem: str | None = None
    note: str | None = None  # not a problem: why a row was skipped


@dataclass
class CheckResult:
    code: int
    night: date
    problems: list[str] = field(default_factory=list)
    apps: list[AppVerdict] = field(default_factory=list)

    @property
    def state(self) -> str:
        return STATE_NAMES[self.code]

    @property
    def summary(self) -> str:
        if self.code == OK:
            done = sum(1 for a in self.apps if a.status in ("succeeded", "pruned"))
            skipped = sum(1 for a in self.apps if a.status == "skipped")
            return f"OK: night {self.night} complete, {done} apps backed up" + (
                f", {skipped} skipped (no longer in the registry)" if skipped else ""
            )
        return f"{self.state}: night {self.night}: " + "; ".join(self.problems)


def _names(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def evaluate(
    *,
    night: date,
    window_open: bool,
    night_row: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]],
    enabled_apps: Sequence[str],
    last_successes: Mapping[str, Mapping[str, Any]],
    now: datetime,
    max_age: float,
) -> CheckResult:
    """Judge one night from its ledger rows and the registry's enabled apps."""
    result = CheckResult(OK, night)
    critical: list[str] = []
    warning: list[str] = []
    by_app = {str(row["app_id"]): row for row in rows}
    enabled = set(enabled_apps)

    if not enabled:
        # run-nightly refuses such a registry; an empty answer is never a good night.
        critical.append("the registry lists no enabled apps")
    if night_row is None:
        (warning if window_open else critical).append(
            "not started yet" if window_open else "no run recorded: run-nightly did not run"
        )
    elif night_row["status"] == "missed":
        critical.append("missed: no run-nightly ran that night")

    failed = sorted(a for a, r in by_app.items() if r["status"] == "failed")
    stuck = sorted(a for a, r in by_app.items() if r["status"] == "running" and r["lease_expired"])
    open_ = sorted(
        a
        for a, r in by_app.items()
        if r["status"] in ("pending", "enqueued")
        or (r["status"] == "running" and not r["lease_expired"])
    )
    unplanned = sorted(a for a in enabled if a not in by_app) if night_row else []
    if failed:
        critical.append(f"{len(failed)} failed ({_names(failed)})")
    if stuck:
        critical.append(f"{len(stuck)} stuck running past their lease ({_names(stuck)})")
    if open_:
        if window_open:
            warning.append(f"still running inside its window, {len(open_)} not done yet")
        else:
            critical.append(f"{len(open_)} not done after the window closed ({_names(open_)})")
    if unplanned:
        (warning if window_open else critical).append(
            f"{len(unplanned)} enabled apps not in this night ({_names(unplanned)})"
        )

    failed_set, stuck_set, open_set = set(failed), set(stuck), set(open_)
    too_old: list[str] = []
    for app_id in sorted(enabled | set(by_app)):
        row = by_app.get(app_id)
        last = last_successes.get(app_id)
        last_at = last["finished_at"] if last else None
        verdict = AppVerdict(
            app_id,
            str(row["status"]) if row else "missing",
            int(row["attempts"]) if row else 0,
            last_at,
        )
        in_progress = window_open and app_id in open_set  # judged once its window closes
        stale = last_at is None or (now - last_at).total_seconds() > max_age
        if app_id in enabled and stale and not in_progress:
            too_old.append(app_id)
            verdict.problem = "no success " + (
                "ever"
                if last_at is None
                else f"for {format_duration((now - last_at).total_seconds())}"
            )
        if row is not None and row["status"] == "skipped":
            verdict.note = str(row["error"] or "skipped")
        if app_id in failed_set:
            verdict.problem = f"failed: {row['error'] if row else ''}"
        elif app_id in stuck_set:
            verdict.problem = "stuck: its process died and the lease expired"
        result.apps.append(verdict)
    if too_old:
        critical.append(
            f"{len(too_old)} with no success within {format_duration(max_age)} ({_names(too_old)})"
        )

    result.problems = critical + warning
    result.code = CRITICAL if critical else WARNING if warning else OK
    return result
