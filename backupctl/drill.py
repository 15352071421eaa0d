"""Restore drills, the generic flow: verify a backup (as it streams, for a `one_pass`
kind), let its kind restore it into a scratch target and compare what came back with
the backup's manifest (each kind's `drill`, in backupctl.kinds), record the verdict.
The kind removes its scratch target, whatever happens.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from backupctl.errors import BackupctlError, BackupFailed
from backupctl.kinds import KindOptions
from backupctl.manifest import Manifest
from backupctl.redact import redact_text, redact_url
from backupctl.wording import one_line, short_list

if TYPE_CHECKING:
    from backupctl.encryption import Identities
    from backupctl.ledger import Ledger
    from backupctl.registry import App
    from backupctl.storage import Storages

# Every scratch target a drill makes is named so (a database, a temporary folder):
# one of that name is a drill's, left by a kill before its clean-up.
SCRATCH_PREFIX = "backupctl_drill_"


class DrillStopped(BaseException):
    """A signal asked the drill to stop. A BaseException: no `except Exception` on the
    way (a storage read, a restore) may swallow it, and every `finally` still runs."""


class DrillMismatch(Exception):
    """The restore succeeded but does not hold what the backup recorded."""


@dataclass
class DrillResult:
    """One drill's verdict, as recorded and shown."""

    app_id: str
    backup_id: int
    run_date: date
    passed: bool
    duration_s: float
    restored: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    def as_json(self) -> dict[str, Any]:
        """The drill as `drill --json` prints it."""
        return {
            "app_id": self.app_id,
            "backup_id": self.backup_id,
            "run_date": self.run_date.isoformat(),
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "restored": self.restored,
            "error": self.error,
        }


@dataclass(frozen=True)
class DrillTargets:
    """Where drills restore to, and how long a drill_argv program may run."""

    # The scratch server for drills of kind `name` (`[drill] <name>_url`, e.g. the
    # postgres_url), asked only when such an app is drilled; a UsageError if none.
    server_url: Callable[[str], str]
    kind_options: KindOptions = field(default_factory=KindOptions)
    timeout: float = 3600.0
    identities: Identities | None = None  # opens encrypted backups


def drill_order(
    app_ids: Sequence[str], latest: dict[str, dict[str, Any]], rng: random.Random
) -> list[str]:
    """`app_ids` for `--sample`: those not drilled for longest first (never drilled
    before all), in random order among equals."""
    shuffled = list(app_ids)
    rng.shuffle(shuffled)

    def last(app_id: str) -> float:
        at = (latest.get(app_id) or {}).get("last_started_at")
        return at.timestamp() if isinstance(at, datetime) else float("-inf")

    return sorted(shuffled, key=last)  # stable: the shuffle breaks ties


def drill(
    ledger: Ledger, storages: Storages, app: App, row: dict[str, Any], targets: DrillTargets
) -> DrillResult:
    """Restore the backup of `row` (a `Ledger.drillable_backup` row) of `app` into a
    scratch target, check it against its manifest, record the verdict and return it.
    A DrillStopped is recorded as a failure and raised again, after clean-up."""
    from backupctl.kinds import kind_named
    from backupctl.restore import artifact_from_row, open_source

    artifact = artifact_from_row(row, f"app {app.id!r}")
    manifest = Manifest.from_json(row.get("manifest"))
    started = datetime.now(UTC)
    clock = time.monotonic()
    restored: dict[str, Any] = {}
    error: str | None = None
    stopped: DrillStopped | None = None
    try:
        kind = kind_named(artifact.kind, targets.kind_options)
        source = open_source(storages, artifact, targets.identities, verify_first=not kind.one_pass)
        kind.drill(source, app, manifest, targets, restored)
    except DrillStopped as exc:
        stopped = exc
        error = f"stopped: {exc}"
    except (BackupctlError, BackupFailed, DrillMismatch, OSError) as exc:
        error = one_line(redact_text(str(exc)))
    result = DrillResult(
        app.id,
        artifact.backup_id,
        row["run_date"],
        error is None,
        time.monotonic() - clock,
        restored,
        error,
    )
    ledger.record_drill(
        app_id=result.app_id,
        backup_id=result.backup_id,
        run_date=result.run_date,
        started_at=started,
        duration_s=result.duration_s,
        passed=result.passed,
        restored=result.restored,
        error=result.error,
    )
    if stopped is not None:
        raise stopped
    return result


def note_no_manifest(restored: dict[str, Any], what: str) -> None:
    """Say in `restored` that `what` could not be compared: the backup (made before
    manifests, or whose kind could not tell) records none."""
    restored["note"] = f"the backup has no manifest: {what} not compared"


@contextmanager
def scratch_database(
    dbname: str, server: str, create: Callable[[], bool], drop: Callable[[], None]
) -> Iterator[None]:
    """A scratch database for one drill, on `server` (named in errors, masked): a
    leftover of the same name (a drill killed before its clean-up: nobody else names
    databases so) is dropped first, then it is created and, whatever happens inside
    the block, dropped again; also when a DrillStopped (SIGTERM) lands mid-drop.
    `create` returns False when the database exists already."""
    drop()
    try:  # entered before the database exists: a signal right after CREATE still drops it
        if not create():
            raise BackupFailed(f"database {dbname} exists already: another drill of this backup?")
        yield
    finally:
        try:
            try:
                drop()
            except DrillStopped:
                drop()  # it landed mid-drop; raised once
                raise
        except BackupFailed as exc:
            raise BackupFailed(f"{exc} (on {redact_url(server)}): drop it by hand") from None


def check_tables(
    restored: dict[str, Any], manifest: Manifest | None, tables: Sequence[str], rows: int
) -> None:
    """Put what a database drill restored into `restored`, and raise DrillMismatch
    when a table the backup recorded (the manifest's `table_names`) did not come back."""
    restored["tables"] = len(tables)
    restored["rows"] = rows
    names = manifest.fields.get("table_names") if manifest is not None else None
    if names is None:  # no manifest, or one whose tables were unknown
        note_no_manifest(restored, "tables")
        return
    missing = sorted(set(names) - set(tables))
    if missing:
        raise DrillMismatch(
            f"{len(missing)} of the backup's {len(names)} tables are missing "
            f"after the restore ({short_list(missing)})"
        )
