"""Kind `sqlite`: a consistent copy of a SQLite database file, taken with SQLite's online
backup API while the app keeps writing, then streamed like any dump. Restored to a
file, atomically; drilled with PRAGMA integrity_check and a count of every table.

The copy (sqlitecopy.py) goes to a temporary file on this machine, removed once it
has been streamed (and, after a kill, by the next sqlite backup on this machine).

Manifest: `tables` (a count), `table_names`, `table_rows` (each table's rows) and
`rows` (their total), counted in the copy itself: the very snapshot backed up; and
`sha256`, of the database file as backed up (what a drill's restore must give back
byte for byte: SQLite has no checksums of its own, and a changed byte inside a row
is no damage to integrity_check).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import DumpResult, KindOptions, Writer
from backupctl.kinds.fields import KindSpec, path
from backupctl.kinds.preflight import this_user

if TYPE_CHECKING:
    from backupctl.drill import DrillTargets
    from backupctl.manifest import Manifest
    from backupctl.registry.model import App
    from backupctl.restore import RestoreRequest, Source

log = logging.getLogger(__name__)

MAGIC = b"SQLite format 3\0"  # the first 16 bytes of every SQLite database file


class SqliteKind:
    extension = "sqlite"
    one_pass = False  # also written to standard output: verified first
    fields = KindSpec({"path": path}, frozenset({"path"}), paths=frozenset({"path"}))

    def __init__(self, options: KindOptions | None = None) -> None:
        self._options = options or KindOptions()

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Copy the database at `path` with the online backup API to a temporary
        file, count its tables and rows (the manifest), and stream the copy to `out`."""
        from backupctl.kinds.sqlitecopy import consistent_copy, count_rows

        source = Path(app.params["path"])
        with consistent_copy(source, cancel) as copy:
            counted = count_rows(copy.path)
            sha256 = copy.stream_to(out, cancel)
        tables = dict(counted)
        manifest = {
            "tables": len(tables),
            "table_names": sorted(tables),
            "table_rows": tables,
            "rows": sum(tables.values()),
            "sha256": sha256,
        }
        empty = "the database has no tables" if not tables else None
        return DumpResult(
            written_by=f"sqlite {sqlite3.sqlite_version}", manifest=manifest, empty=empty
        )

    def secrets(self, app: App) -> list[str]:
        return []

    def preflight(self, app: App) -> list[str]:
        """Why a backup would fail now: the file missing, not a file, not readable,
        or not a SQLite database."""
        source = str(app.params["path"])
        try:
            st = os.stat(source)
        except FileNotFoundError:
            return [f"path {source} does not exist"]
        except OSError as exc:
            return [f"path {source} can't be looked at: {exc.strerror}"]
        if not stat.S_ISREG(st.st_mode):
            return [f"path {source} is not a file"]
        try:
            with open(source, "rb") as fh:
                head = fh.read(len(MAGIC))
        except PermissionError:
            return [f"path {source} is not readable by {this_user()}"]
        except OSError as exc:
            return [f"path {source} can't be read: {exc.strerror}"]
        if head != MAGIC and st.st_size > 0:
            return [f"path {source} is not a SQLite database"]
        return []

    def restore(self, source: Source, target: str, request: RestoreRequest) -> str:
        """To a new file `target` (or standard output for "-"), written beside it,
        fsynced and renamed into place. An existing file is refused unless
        `request.clean`, which replaces it (and removes its -wal, -shm and -journal
        files, which belong to the database replaced)."""
        from backupctl.kinds.tofile import restore_to_file, restore_to_stdout

        if target == "-":
            return restore_to_stdout(source)
        return restore_to_file(
            source,
            Path(target),
            replace=request.clean,
            check=_is_database,
            before_replace=remove_sidecars,
            refused="restore to a new file, or pass --clean to replace it",
        )

    def drill(
        self,
        source: Source,
        app: App,
        manifest: Manifest | None,
        targets: DrillTargets,
        restored: dict[str, Any],
    ) -> None:
        """Restore to a temporary file, run PRAGMA integrity_check, count every
        table's rows; the tables and their rows must be the manifest's."""
        import shutil
        import tempfile

        from backupctl.drill import SCRATCH_PREFIX, DrillMismatch, note_no_manifest
        from backupctl.restore import RestoreRequest

        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        try:
            restored_file = scratch / "restored.sqlite"
            self.restore(source, str(restored_file), RestoreRequest())
            sha256 = _sha256(restored_file)  # before SQLite opens it
            counted = dict(_checked_counts(restored_file))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        restored["tables"] = len(counted)
        restored["rows"] = sum(counted.values())
        fields = manifest.fields if manifest is not None else {}
        if "table_rows" not in fields:
            note_no_manifest(restored, "tables and rows")
            return
        _compare(counted, {str(k): int(v) for k, v in fields["table_rows"].items()})
        if sha256 != fields.get("sha256", sha256):
            raise DrillMismatch(
                "the restored database is not the one backed up (its sha256 differs), "
                "though its tables and rows are all there"
            )


def _checked_counts(file: Path) -> list[tuple[str, int]]:
    from backupctl.drill import DrillMismatch
    from backupctl.kinds.sqlitecopy import count_rows

    try:
        with contextlib.closing(sqlite3.connect(file)) as conn:
            problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        raise DrillMismatch(f"the restored database is damaged: {exc}") from None
    if problems != ["ok"]:
        from backupctl.wording import short_list

        raise DrillMismatch(f"PRAGMA integrity_check failed: {short_list(problems)}")
    try:
        return count_rows(file)
    except BackupFailed as exc:
        raise DrillMismatch(str(exc)) from None


def _sha256(file: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with file.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _compare(counted: dict[str, int], recorded: dict[str, int]) -> None:
    from backupctl.drill import DrillMismatch
    from backupctl.wording import short_list

    missing = sorted(set(recorded) - set(counted))
    if missing:
        raise DrillMismatch(
            f"{len(missing)} of the backup's {len(recorded)} tables are missing "
            f"after the restore ({short_list(missing)})"
        )
    differ = sorted(t for t in recorded if counted[t] != recorded[t])
    if differ:
        shown = [f"{t}: {counted[t]} rows, recorded {recorded[t]}" for t in differ]
        raise DrillMismatch(f"rows differ from the backup's in {short_list(shown)}")


def _is_database(file: Path) -> None:
    """Refuse restored data that is not a SQLite database (RestoreFailed)."""
    from backupctl.restore import RestoreFailed

    with file.open("rb") as fh:
        head = fh.read(len(MAGIC))
    if head != MAGIC and file.stat().st_size > 0:
        raise RestoreFailed("the restored data is not a SQLite database")


def remove_sidecars(database: Path) -> None:
    """Remove the -wal, -shm and -journal files of `database`: SQLite would replay a
    stale write-ahead log or journal into the file that replaces it."""
    from backupctl.kinds.sqlitecopy import SIDECARS

    for suffix in SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{database}{suffix}")
