"""backupctl check: is the night complete? A dead-man's switch with Nagios states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from backupctl.durations import Window, format_duration
from backupctl.judged import Judged, Tally, tally
from backupctl.nagios import Perf
from backupctl.nights import night_for, window_bounds
from backupctl.wording import one_line, plural, short_list

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def night_to_check(now: datetime, window: Window, tz: ZoneInfo) -> tuple[date, bool]:
    """The night `check` judges, and whether its window is still open: tonight's while
    its window is open, else the latest night whose window has closed."""
    current = night_for(now, window, tz)
    if current is not None:
        return current, True
    return latest_closed_night(now, window, tz), False


def latest_closed_night(now: datetime, window: Window, tz: ZoneInfo) -> date:
    """The latest night whose window has closed by `now` (yesterday's, for a window
    of the whole day)."""
    today = now.astimezone(tz).date()
    for back in range(3):
        night = today - timedelta(days=back)
        if window_bounds(night, window, tz)[1] <= now:
            return night
    raise AssertionError("some night's window closed within three days")


@dataclass
class AppVerdict:
    app_id: str
    status: str  # the app's nightly row status, or "missing"
    attempts: int
    last_success: datetime | None
    problem: str | None = None
    note: str | None = None  # not a problem: why a row was skipped, or what a history row says
    registry: str = "enabled"  # Judged.standing: enabled, disabled, removed, planned, unknown
    history: str | None = None  # set: the row is history (why), not judged
    warning: str | None = None  # a succeeded backup that looks wrong (far smaller than usual)

    @property
    def judged(self) -> bool:
        return self.history is None


@dataclass
class CheckResult:
    code: int
    night: date
    problems: list[str] = field(default_factory=list)
    apps: list[AppVerdict] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    # Seconds since the stalest judged app's latest success; None if one never
    # succeeded (or no app is judged).
    age: float | None = None
    max_age: float = 0.0

    @property
    def state(self) -> str:
        return STATE_NAMES[self.code]

    @property
    def summary(self) -> str:
        if self.code == OK:
            t = self.tally
            return (
                f"OK: night {self.night} complete, {plural(t.succeeded, 'app')} backed up"
                + (f", {t.skipped} skipped" if t.skipped else "")
                + (
                    f", {plural(len(t.history), 'app')} no longer in the registry (not judged)"
                    if t.history
                    else ""
                )
            )
        return f"{self.state}: night {self.night}: " + "; ".join(self.problems)


def perfdata(result: CheckResult) -> list[Perf]:
    """A verdict's numbers for Nagios, over the judged apps: how many, their backups of
    the night that succeeded and failed, the bytes those stored, and `age`: seconds
    since the stalest app's latest success (U if one never succeeded), critical past
    --max-age."""
    t = result.tally
    return [
        Perf("apps", t.apps),
        Perf("succeeded", t.succeeded),
        Perf("failed", t.failed),
        Perf("bytes", t.bytes, "B"),
        Perf(
            "age",
            None if result.age is None else round(result.age),
            "s",
            crit=str(round(result.max_age)),
        ),
    ]


def evaluate(
    *,
    night: date,
    window_open: bool,
    night_row: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]],
    judged: Judged,
    last_successes: Mapping[str, Mapping[str, Any]],
    now: datetime,
    max_age: float,
    drills: Mapping[str, Mapping[str, Any]] | None = None,
    drill_max_age: float | None = None,
) -> CheckResult:
    """Judge one night from its ledger rows, over the judged apps (the registry's
    enabled ones); rows of other apps are listed as history and change nothing.
    With `drill_max_age` ([drill] max_age), an app whose latest passed drill
    (`drills`: Ledger.latest_drills) is older, or that never passed one, is critical."""
    result = CheckResult(OK, night, tally=tally(rows, judged), max_age=max_age)
    critical: list[str] = []
    warning: list[str] = []
    by_app = {str(row["app_id"]): row for row in rows}
    ours = {a: r for a, r in by_app.items() if judged.judges(a)}

    if not judged.from_registry:
        # The ledger still tells how the night went; an operator must still hear that
        # tonight's run-nightly will refuse the same registry.
        warning.append(
            f"the registry can't be read ({judged.registry_error}): judged the "
            f"{plural(len(judged.apps), 'app')} the night planned"
        )
    elif not judged.apps:
        # run-nightly refuses such a registry; an empty answer is never a good night.
        critical.append("the registry lists no enabled apps")
    if night_row is None:
        (warning if window_open else critical).append(
            "not started yet" if window_open else "no run recorded: run-nightly did not run"
        )
    elif night_row["status"] == "missed":
        critical.append("missed: no run-nightly ran that night")

    failed = sorted(a for a, r in ours.items() if r["status"] == "failed")
    stuck = sorted(a for a, r in ours.items() if r["status"] == "running" and r["lease_expired"])
    open_ = sorted(
        a
        for a, r in ours.items()
        if r["status"] in ("pending", "enqueued")
        or (r["status"] == "running" and not r["lease_expired"])
    )
    unplanned = result.tally.not_in_night if night_row else []
    small = sorted(a for a, r in ours.items() if r["status"] == "succeeded" and r.get("warning"))
    hooked = sorted(
        a for a, r in ours.items() if r["status"] == "succeeded" and r.get("hook_warning")
    )
    if failed:
        critical.append(f"{len(failed)} failed ({short_list(failed)})")
    if stuck:
        critical.append(f"{len(stuck)} stuck running past their lease ({short_list(stuck)})")
    if open_:
        if window_open:
            warning.append(f"still running inside its window, {len(open_)} not done yet")
        else:
            critical.append(f"{len(open_)} not done after the window closed ({short_list(open_)})")
    if unplanned:
        (warning if window_open else critical).append(
            f"{plural(len(unplanned), 'enabled app')} not in this night ({short_list(unplanned)})"
        )
    if small:
        # Succeeded, but a sudden shrink is worth a look before prune or a restore.
        detail = (
            f"{small[0]}: {ours[small[0]]['warning']}" if len(small) == 1 else short_list(small)
        )
        warning.append(f"{plural(len(small), 'backup')} far smaller than usual ({detail})")
    if hooked:
        # Backed up, but the app may still be quiesced: its after hook failed.
        detail = (
            f"{hooked[0]}: {one_line(str(ours[hooked[0]]['hook_warning']))[:300]}"
            if len(hooked) == 1
            else short_list(hooked)
        )
        warning.append(f"{plural(len(hooked), 'backup')} whose after hook failed ({detail})")

    failed_set, stuck_set, open_set = set(failed), set(stuck), set(open_)
    too_old: list[str] = []
    ages: list[float | None] = []
    for app_id in sorted(judged.apps):
        row = by_app.get(app_id)
        verdict = _verdict(app_id, row, last_successes, judged)
        last_at = verdict.last_success
        age = None if last_at is None else (now - last_at).total_seconds()
        ages.append(age)
        in_progress = window_open and app_id in open_set  # judged once its window closes
        if (age is None or age > max_age) and not in_progress:
            too_old.append(app_id)
            verdict.problem = "no success " + (
                "ever" if age is None else f"for {format_duration(age)}"
            )
        if app_id in failed_set:
            verdict.problem = f"failed: {row['error'] if row else ''}"
        elif app_id in stuck_set:
            verdict.problem = "stuck: its process died and the lease expired"
        result.apps.append(verdict)
    for app_id in result.tally.history:
        result.apps.append(_verdict(app_id, by_app[app_id], last_successes, judged))
    if too_old:
        critical.append(
            f"{len(too_old)} with no success within {format_duration(max_age)} "
            f"({short_list(too_old)})"
        )
    if drill_max_age is not None:
        undrilled = _undrilled(sorted(judged.apps), drills or {}, now, drill_max_age)
        if undrilled:
            critical.append(
                f"{plural(len(undrilled), 'app')} with no passed drill within "
                f"{format_duration(drill_max_age)} ({short_list(undrilled)})"
            )
    if ages and None not in ages:
        result.age = max(a for a in ages if a is not None)

    result.problems = critical + warning
    result.code = CRITICAL if critical else WARNING if warning else OK
    return result


def _verdict(
    app_id: str,
    row: Mapping[str, Any] | None,
    last_successes: Mapping[str, Mapping[str, Any]],
    judged: Judged,
) -> AppVerdict:
    """An app's line before any problem is found: its row, latest success, standing."""
    last = last_successes.get(app_id)
    verdict = AppVerdict(
        app_id,
        str(row["status"]) if row else "missing",
        int(row["attempts"]) if row else 0,
        last["finished_at"] if last else None,
        registry=judged.standing(app_id),
        history=judged.history_reason(app_id),
    )
    if row is not None and row["status"] == "succeeded" and row.get("warning"):
        verdict.warning = str(row["warning"])
    if row is not None and (row["status"] == "skipped" or not verdict.judged) and row["error"]:
        verdict.note = str(row["error"])
    elif row is not None and row["status"] == "skipped":
        verdict.note = "skipped"
    return verdict


def _undrilled(
    app_ids: Sequence[str],
    drills: Mapping[str, Mapping[str, Any]],
    now: datetime,
    max_age: float,
) -> list[str]:
    """The apps whose latest passed drill is older than `max_age`, or that have none."""
    stale = []
    for app_id in app_ids:
        passed = (drills.get(app_id) or {}).get("last_passed_at")
        if not isinstance(passed, datetime) or (now - passed).total_seconds() > max_age:
            stale.append(app_id)
    return stale
