"""Restore drills: restore a backup into a scratch target, compare what came back with
the backup's manifest, record the verdict, and remove the scratch target.

postgres: a new database `backupctl_drill_<backup id>` on the drill server, restored
without the app's owners and privileges (a scratch server has none of its roles) and
always dropped afterwards. files: a temporary folder. command: a temporary file,
piped into the app's `drill_argv` program when it has one.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupctl.errors import BackupctlError, BackupFailed
from backupctl.manifest import Manifest
from backupctl.redact import redact_text, redact_url
from backupctl.wording import one_line, short_list

if TYPE_CHECKING:
    from backupctl.encryption import Identities
    from backupctl.kinds.pgtools import PgTools
    from backupctl.ledger import Ledger
    from backupctl.registry import App
    from backupctl.restore import Artifact
    from backupctl.storage import Storages

SCRATCH_PREFIX = "backupctl_drill_"
STDERR_TAIL = 2000


class DrillStopped(BaseException):
    """A signal asked the drill to stop. A BaseException: no `except Exception` on the
    way (a storage read, a restore) may swallow it, and every `finally` still runs."""


class _Mismatch(Exception):
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

    postgres_url: Callable[[], str]  # asked only when a postgres app is drilled
    pg_tools: PgTools
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
    from backupctl.restore import artifact_from_row

    artifact = artifact_from_row(row, f"app {app.id!r}")
    manifest = Manifest.from_json(row.get("manifest"))
    started = datetime.now(UTC)
    clock = time.monotonic()
    restored: dict[str, Any] = {}
    error: str | None = None
    stopped: DrillStopped | None = None
    try:
        if artifact.kind == "postgres":
            _drill_postgres(storages, artifact, manifest, targets, restored)
        elif artifact.kind == "files":
            _drill_files(storages, artifact, manifest, targets, restored)
        else:
            _drill_command(storages, artifact, manifest, app, targets, restored)
    except DrillStopped as exc:
        stopped = exc
        error = f"stopped: {exc}"
    except (BackupctlError, BackupFailed, _Mismatch, OSError) as exc:
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


def _no_manifest(restored: dict[str, Any], what: str) -> None:
    restored["note"] = f"the backup has no manifest: {what} not compared"


# -- postgres ---------------------------------------------------------------------


def _drop_scratch(conninfo: str, password: str | None, dbname: str) -> None:
    """DROP DATABASE ... WITH (FORCE): a pg_restore just killed may still be connected."""
    import psycopg
    from psycopg import sql

    from backupctl.kinds.pgconnect import MAINTENANCE_DB, connect

    with connect(conninfo, password, MAINTENANCE_DB) as conn:
        try:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        except psycopg.Error as exc:
            raise BackupFailed(f"cannot drop database {dbname}: {redact_text(str(exc))}") from None


def _drill_postgres(
    storages: Storages,
    artifact: Artifact,
    manifest: Manifest | None,
    targets: DrillTargets,
    restored: dict[str, Any],
) -> None:
    from psycopg.conninfo import make_conninfo

    from backupctl.kinds.pgconnect import connect, create_database
    from backupctl.kinds.postgres import split_password
    from backupctl.restore import Owners, restore_artifact

    server = targets.postgres_url()
    conninfo, password = split_password(server)
    dbname = f"{SCRATCH_PREFIX}{artifact.backup_id}"
    # A database of this name is a drill's that was killed (SIGKILL) before its
    # clean-up: nobody else names databases so.
    _drop_scratch(conninfo, password, dbname)
    try:  # entered before the database exists: a signal right after CREATE still drops it
        if not create_database(conninfo, password, dbname):
            raise BackupFailed(f"database {dbname} exists already: another drill of this backup?")
        restore_artifact(
            storages,
            artifact,
            make_conninfo(server, dbname=dbname),
            clean=False,
            create=False,
            pg_tools=targets.pg_tools,
            owners=Owners(no_owner=True, no_privileges=True),
            identities=targets.identities,
        )
        with connect(conninfo, password, dbname) as conn:
            tables, rows = _count_rows(conn)
    finally:
        try:
            try:
                _drop_scratch(conninfo, password, dbname)
            except DrillStopped:
                _drop_scratch(conninfo, password, dbname)  # it landed mid-drop; raised once
                raise
        except BackupFailed as exc:
            raise BackupFailed(f"{exc} (on {redact_url(server)}): drop it by hand") from None
    restored["tables"] = len(tables)
    restored["rows"] = rows
    if manifest is None or manifest.tables is None:
        _no_manifest(restored, "tables")
        return
    missing = sorted(set(manifest.tables) - set(tables))
    if missing:
        raise _Mismatch(
            f"{len(missing)} of the backup's {len(manifest.tables)} tables are missing "
            f"after the restore ({short_list(missing)})"
        )


def _count_rows(conn: Any) -> tuple[list[str], int]:
    """The restored tables ("schema.name") and the exact count of their rows."""
    from psycopg import sql

    found = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_toast%%' ORDER BY 1, 2"
    ).fetchall()
    rows = 0
    for schema, name, relkind in found:
        if relkind == "p":  # a partitioned table holds no rows: its partitions do
            continue
        counted = conn.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
        ).fetchone()
        rows += int(counted[0])
    return [f"{schema}.{name}" for schema, name, _ in found], rows


# -- files --------------------------------------------------------------------------


def _drill_files(
    storages: Storages,
    artifact: Artifact,
    manifest: Manifest | None,
    targets: DrillTargets,
    restored: dict[str, Any],
) -> None:
    from backupctl.restore import Owners, restore_artifact
    from backupctl.untar import empty_folder

    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    try:
        restore_artifact(
            storages,
            artifact,
            str(scratch),
            clean=False,
            owners=Owners(same_owner=False),
            identities=targets.identities,
        )
        files, size = _count_files(scratch)
    finally:
        if scratch.is_dir():
            empty_folder(scratch)  # the backup's read-only folders too
        shutil.rmtree(scratch, ignore_errors=True)
    restored["files"] = files
    restored["bytes"] = size
    if manifest is None or manifest.files is None or manifest.file_bytes is None:
        _no_manifest(restored, "files and bytes")
        return
    if (files, size) != (manifest.files, manifest.file_bytes):
        raise _Mismatch(
            f"restored {files} files of {size} bytes, the backup recorded "
            f"{manifest.files} files of {manifest.file_bytes} bytes"
        )


def _count_files(folder: Path) -> tuple[int, int]:
    """Regular files under `folder` and their bytes; a hard-linked file once (as tar
    stores it once)."""
    seen: set[tuple[int, int]] = set()
    size = 0
    for parent, _dirs, names in os.walk(folder):
        for name in names:
            st = os.lstat(os.path.join(parent, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                size += st.st_size
    return len(seen), size


# -- command ------------------------------------------------------------------------


def _drill_command(
    storages: Storages,
    artifact: Artifact,
    manifest: Manifest | None,
    app: App,
    targets: DrillTargets,
    restored: dict[str, Any],
) -> None:
    from backupctl.restore import restore_artifact

    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    try:
        output = scratch / "restored"
        restore_artifact(
            storages, artifact, str(output), clean=False, identities=targets.identities
        )
        restored["bytes"] = output.stat().st_size
        argv = app.params.get("drill_argv")
        if argv:
            _run_drill_argv(list(argv), output, targets.timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if manifest is None:
        _no_manifest(restored, "bytes")
        return
    if restored["bytes"] != manifest.uncompressed_bytes:
        raise _Mismatch(
            f"restored {restored['bytes']} bytes, the backup recorded {manifest.uncompressed_bytes}"
        )


def _run_drill_argv(argv: list[str], restored: Path, timeout: float) -> None:
    """Run the app's drill program with the restored output as its stdin (no shell)."""
    with restored.open("rb") as stdin, tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.run(
                argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise BackupFailed(f"drill_argv {argv[0]} ran longer than {timeout:g}s") from None
        except OSError as exc:
            raise BackupFailed(f"drill_argv {argv[0]} cannot start: {exc.strerror}") from None
        if proc.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace").strip()[-STDERR_TAIL:]
            lines = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
            raise BackupFailed(
                f"drill_argv {argv[0]} exited with status {proc.returncode}"
                + (f": {redact_text(lines)}" if lines else "")
            )
