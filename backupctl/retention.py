"""Retention: which nightly backups to keep (daily, weekly, monthly), and pruning the rest."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from backupctl.ledger import Ledger
from backupctl.redact import redact_text
from backupctl.storage import Storage, Storages
from backupctl.storage.object_lock import ObjectLock

log = logging.getLogger(__name__)


def nights_to_keep(
    nights: Iterable[date], keep_daily: int, keep_weekly: int, keep_monthly: int
) -> set[date]:
    """The nights a policy keeps: the newest `keep_daily` nights, and the newest night of
    each of the newest `keep_weekly` ISO weeks and `keep_monthly` months that have one.
    The newest night is always kept."""
    ordered = sorted(set(nights), reverse=True)
    keep = set(ordered[: max(keep_daily, 1)])
    for count, period in ((keep_weekly, _week), (keep_monthly, _month)):
        seen: set[tuple[int, int]] = set()
        for night in ordered:
            if len(seen) >= count:
                break
            if period(night) not in seen:
                seen.add(period(night))
                keep.add(night)
    return keep


def _week(night: date) -> tuple[int, int]:
    iso = night.isocalendar()
    return iso.year, iso.week


def _month(night: date) -> tuple[int, int]:
    return night.year, night.month


def protected_apps(
    by_app: Mapping[str, Sequence[Mapping[str, Any]]],
    drills: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """The apps whose older backups prune must keep whole, each with the reason: their
    newest good backup is in doubt, so an older one may be the last good one. Today:
    a newest succeeded nightly backup that carries a warning (far smaller than
    usual), or a latest drill that failed. `by_app`: each app's succeeded nightly
    rows, newest night first; `drills`: Ledger.latest_drills of those apps."""
    reasons: dict[str, str] = {}
    for app_id, latest in (drills or {}).items():
        if app_id in by_app and latest.get("last_status") == "failed":
            reasons[app_id] = (
                f"its latest drill (backup {latest['last_backup_id']}, night "
                f"{latest['last_run_date']}) failed: {latest['last_error']}"
            )
    for app_id, rows in by_app.items():
        newest = rows[0] if rows else None
        if newest is not None and newest.get("warning"):
            reasons[app_id] = (
                f"its newest nightly backup ({newest['run_date']}) is far smaller than "
                f"usual: {newest['warning']}"
            )
    return reasons


@dataclass
class PruneReport:
    kept: int = 0
    pruned: list[Mapping[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    locked: list[tuple[Mapping[str, Any], ObjectLock]] = field(default_factory=list)
    protected: dict[str, str] = field(default_factory=dict)  # app id -> why it was kept whole


# Rows marked pruned (one statement) and artifacts deleted (one request per storage,
# where it takes many: S3 DeleteObjects takes up to 1,000 keys) at a time.
BATCH = 1000


def prune(
    ledger: Ledger, storages: Storages, policy: Mapping[str, int], *, dry_run: bool
) -> PruneReport:
    """Delete the artifacts of nightly backups the policy doesn't keep, app by app.

    Rows turn `pruned` (compare-and-set on `succeeded`) BATCH at a time, before their
    artifacts are deleted: a crash in between leaves stray files, never a row that
    points at nothing. Ad-hoc backups are not touched, nor any backup of an app that
    `protected_apps` names. An artifact under an S3 Object Lock keeps its row (in
    `report.locked`) until a prune after the lock ends.
    """
    report = PruneReport()
    by_app: dict[str, list[Mapping[str, Any]]] = {}
    for found in ledger.nightly_succeeded_by_app():
        by_app.setdefault(str(found["app_id"]), []).append(found)
    report.protected = protected_apps(by_app, ledger.latest_drills(list(by_app)))
    for app_id, rows in by_app.items():
        if app_id in report.protected:
            report.kept += len(rows)
            log.warning("app %s: kept every backup: %s", app_id, report.protected[app_id])
            continue
        keep = nights_to_keep(
            (r["run_date"] for r in rows),
            policy["keep_daily"],
            policy["keep_weekly"],
            policy["keep_monthly"],
        )
        for row in rows:
            if row["run_date"] in keep:
                report.kept += 1
                continue
            # Asked per backup only where a lock can be (millions of backups a year).
            if storages.may_lock and _still_locked(storages, row, report):
                continue
            report.pruned.append(row)
    if not dry_run:
        for start in range(0, len(report.pruned), BATCH):
            _prune_batch(ledger, storages, report.pruned[start : start + BATCH], report)
    return report


def _still_locked(storages: Storages, row: Mapping[str, Any], report: PruneReport) -> bool:
    """Whether the artifact is locked (or can't be looked at): then the row stays."""
    try:
        storage, key = storages.for_uri(str(row["artifact_uri"]))
        lock = storage.lock(key)
    except Exception as exc:  # can't tell: keep it, and say so
        report.errors.append(f"{row['artifact_uri']}: {redact_text(str(exc))}")
        return True
    if lock is not None:
        report.locked.append((row, lock))
    return lock is not None


def _prune_batch(
    ledger: Ledger, storages: Storages, rows: Sequence[Mapping[str, Any]], report: PruneReport
) -> None:
    """Mark the rows pruned in one statement, then delete their artifacts, one request
    per storage where it can take many."""
    # The rows another process pruned (or changed) meanwhile are left to it.
    marked = ledger.mark_pruned(int(row["id"]) for row in rows)
    by_storage: dict[int, tuple[Storage, list[tuple[Mapping[str, Any], str]]]] = {}
    for row in rows:
        if int(row["id"]) not in marked:
            continue
        try:
            storage, key = storages.for_uri(str(row["artifact_uri"]))
        except Exception as exc:
            _not_deleted(row, redact_text(str(exc)), report)
            continue
        by_storage.setdefault(id(storage), (storage, []))[1].append((row, key))
    for storage, items in by_storage.values():
        # The rows say pruned; a file that stays is removed by hand (or by prune's sweep).
        failed = storage.delete_many([key for _, key in items])
        for row, key in items:
            if key in failed:
                _not_deleted(row, redact_text(failed[key]), report)


def _not_deleted(row: Mapping[str, Any], why: str, report: PruneReport) -> None:
    message = f"{row['artifact_uri']}: {why}"
    log.warning("app %s backup %s: could not delete %s", row["app_id"], row["id"], message)
    report.errors.append(message)


def check_policy(policy: Mapping[str, int]) -> str | None:
    """Why a policy must not be applied, or None."""
    if not any(policy.values()):
        return "[retention] keeps nothing (every keep_* is 0): refusing to prune"
    return None
