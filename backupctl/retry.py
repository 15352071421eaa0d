"""retry: which nights and apps it may retry, and what it says about them.

A retry that names a night or an app the ledger has no backup for is a mistake (a
typo, the wrong date), never "nothing to retry": that would exit 0 and read like a
healthy night.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from backupctl.errors import UsageError
from backupctl.wording import plural, short_list

if TYPE_CHECKING:
    from backupctl.ledger import Ledger

LISTED = 5  # app ids named in one message; the rest are counted


def check_retry_target(ledger: Ledger, run_date: date, app_id: str | None) -> None:
    """Raise UsageError (exit 2) when `run_date` is not a night in the ledger, was
    missed (nothing of it ran), or has no nightly backup of `app_id`."""
    night = ledger.get_night(run_date)
    if night is None:
        raise UsageError(f"retry: no night {run_date} in the ledger ({_recorded(ledger)})")
    if night["status"] == "missed":
        # Recorded only as a gap: no backup ran, so none failed, and none could be retried.
        raise UsageError(
            f"retry: night {run_date} was missed: none of its backups ran, so none failed; "
            f"run it with `backupctl run-nightly --date {run_date}`"
        )
    if app_id is not None and ledger.nightly_artifact(app_id, run_date) is None:
        total, sample = ledger.night_apps(run_date, LISTED)
        apps = f"its apps: {short_list(sample, total, LISTED)}" if total else "it has no backups"
        raise UsageError(f"retry: app {app_id!r} has no backup in night {run_date} ({apps})")


def _recorded(ledger: Ledger) -> str:
    span = ledger.night_range()
    if span is None:
        return "no night is recorded yet; `backupctl run-nightly` records one"
    first, last = span
    if first == last:
        return f"the only night recorded is {first}"
    return f"the nights recorded run from {first} to {last}; `backupctl runs` lists them"


def retrying_line(run_date: date, granted: Sequence[str]) -> str:
    """'retrying 2 failed backups of 2026-11-28: crm, shop'."""
    names = short_list(sorted(granted), limit=10)
    return f"retrying {plural(len(granted), 'failed backup')} of {run_date}: {names}"


def nothing_to_retry(ledger: Ledger, run_date: date, app_id: str | None) -> str:
    """The line for a retry of a recorded night (or app) with no failed backup, saying
    what it holds instead (a backup still running or pending shows here)."""
    counts = ledger.night_statuses(run_date, app_id)
    if app_id is not None:
        status = ", ".join(counts) or "gone"  # the row vanished between the two looks
        return (
            f"nothing to retry: no failed backup for app {app_id!r} on {run_date} "
            f"(its backup: {status})"
        )
    held = ", ".join(f"{n} {status}" for status, n in counts.items())
    total = plural(sum(counts.values()), "backup")
    return (
        f"nothing to retry: no failed backup in night {run_date} "
        f"({total}{': ' + held if held else ''})"
    )
