"""Storage matches the ledger: find (and remove) what no ledger row points to.

An orphan is a backupctl artifact, or a temporary file or unfinished upload of one,
that no succeeded backup points to: what a crash between publish and finish, a
fenced process whose delete failed, or a failed prune left behind. Only names that
backupctl writes are considered, nothing of a backup still running, and nothing
younger than `min_age` (a backup may be between publish and finish right now).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backupctl.artifacts import backup_id_of
from backupctl.ledger import Ledger
from backupctl.redact import redact_text
from backupctl.storage import Entry, Storage

log = logging.getLogger(__name__)

MIN_AGE = timedelta(days=1)


@dataclass(frozen=True)
class Orphan:
    storage: Storage
    entry: Entry

    @property
    def uri(self) -> str:
        return self.storage.uri(self.entry.key) + (
            " (unfinished upload)" if self.entry.upload_id else ""
        )


@dataclass
class OrphanReport:
    found: list[Orphan] = field(default_factory=list)
    removed: list[Orphan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def find_orphans(
    ledger: Ledger, storages: Mapping[str, Storage], now: datetime, min_age: timedelta = MIN_AGE
) -> list[Orphan]:
    """Orphans in every storage of `storages`, oldest first."""
    # Read before listing: a backup that succeeds meanwhile is younger than min_age.
    referenced = ledger.referenced_artifacts()
    running = ledger.running_backup_ids()
    found: list[Orphan] = []
    for storage in storages.values():
        for entry in storage.entries():
            backup_id = backup_id_of(entry.key)
            if backup_id is None or backup_id in running:
                continue
            if now - entry.modified < min_age:
                continue
            if entry.upload_id is None and storage.uri(entry.key) in referenced:
                continue
            found.append(Orphan(storage, entry))
    return sorted(found, key=lambda o: o.entry.modified)


def remove_orphans(orphans: Iterable[Orphan], report: OrphanReport) -> None:
    """Delete each orphan; a failure is recorded and the rest go on."""
    for orphan in orphans:
        try:
            orphan.storage.remove(orphan.entry)
        except Exception as exc:  # one stuck file must not stop the sweep
            message = f"{orphan.uri}: {redact_text(str(exc))}"
            log.warning("could not remove orphan %s", message)
            report.errors.append(message)
            continue
        report.removed.append(orphan)
