"""Storage matches the ledger: find (and remove) what no ledger row points to.

Files are matched to rows by the backup id in their names, never by URL (a storage
mounted under another path would otherwise look orphaned whole). A file is an
orphan when its row, in this ledger, is for the same app and does not point to it:
a crash between publish and finish, a fenced process whose delete failed, a failed
prune, a killed upload's temporary file. A file whose backup id has no row here (or
a row of another app) belongs to no backup of this ledger, maybe another ledger's
sharing the storage: it is reported, never deleted. Nothing of a backup still
running counts, nothing younger than `min_age`, and each orphan is looked up again
right before it is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backupctl.artifacts import parse_artifact_key
from backupctl.ledger import Ledger
from backupctl.redact import redact_text
from backupctl.storage import Entry, Storage
from backupctl.storage.object_lock import ObjectLocked

log = logging.getLogger(__name__)

MIN_AGE = timedelta(days=1)


@dataclass(frozen=True)
class Orphan:
    storage: Storage
    entry: Entry
    backup_id: int

    @property
    def uri(self) -> str:
        return self.storage.uri(self.entry.key) + (
            " (unfinished upload)" if self.entry.upload_id else ""
        )


@dataclass
class OrphanReport:
    found: list[Orphan] = field(default_factory=list)
    foreign: list[Orphan] = field(default_factory=list)  # no row here: left alone
    removed: list[Orphan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    locked: list[tuple[Orphan, str]] = field(default_factory=list)  # kept: "locked until ..."


def _name(key_or_uri: str) -> str:
    return key_or_uri.rstrip("/").rsplit("/", 1)[-1]


def is_dead(row: Mapping[str, Any], entry: Entry) -> bool:
    """Whether `entry` is nothing its row needs: the row is not running, and is not a
    succeeded backup whose artifact is this very file."""
    if row["status"] == "running":
        return False
    uri = row["artifact_uri"]
    keeps = row["status"] == "succeeded" and uri is not None and entry.upload_id is None
    return not (keeps and _name(str(uri)) == _name(entry.key))


def find_orphans(
    ledger: Ledger,
    storages: Mapping[str, Storage],
    now: datetime,
    min_age: timedelta = MIN_AGE,
    report: OrphanReport | None = None,
) -> OrphanReport:
    """Orphans (and files foreign to this ledger) in every storage of `storages`."""
    report = report or OrphanReport()
    candidates: list[tuple[Orphan, str]] = []
    for storage in storages.values():
        for entry in storage.entries():
            parsed = parse_artifact_key(entry.key)
            if parsed is None or now - entry.modified < min_age:
                continue
            app_id, backup_id = parsed
            candidates.append((Orphan(storage, entry, backup_id), app_id))
    rows = ledger.backups_by_ids([orphan.backup_id for orphan, _ in candidates])
    for orphan, app_id in sorted(candidates, key=lambda c: c[0].entry.modified):
        row = rows.get(orphan.backup_id)
        if row is None or row["app_id"] != app_id:
            report.foreign.append(orphan)
        elif is_dead(row, orphan.entry):
            report.found.append(orphan)
    return report


def remove_orphans(ledger: Ledger, orphans: Iterable[Orphan], report: OrphanReport) -> None:
    """Delete each orphan that is still one; a failure is recorded and the rest go on.
    One under an S3 Object Lock is kept and recorded in `report.locked`: expected,
    not a failure; a sweep after the lock ends removes it."""
    for orphan in orphans:
        row = ledger.backups_by_ids([orphan.backup_id]).get(orphan.backup_id)
        if row is None or not is_dead(row, orphan.entry):
            continue  # its backup was taken over and finished meanwhile
        try:
            orphan.storage.remove(orphan.entry)
        except ObjectLocked as locked:
            report.locked.append((orphan, locked.lock.describe()))
            continue
        except Exception as exc:  # one stuck file must not stop the sweep
            message = f"{orphan.uri}: {redact_text(str(exc))}"
            log.warning("could not remove orphan %s", message)
            report.errors.append(message)
            continue
        report.removed.append(orphan)
