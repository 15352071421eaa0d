"""A consistent copy of a live SQLite database, by SQLite's online backup API, into a
temporary file of this machine.

The source is opened read-only (a `mode=ro` URI): backupctl never writes to it. The
copy runs in steps of STEP_PAGES pages, so the app is never locked out for long:

- In WAL mode (`PRAGMA journal_mode=wal`, what a live app should use), the copy
  holds one read transaction from its first step to its last: every step reads the
  same snapshot, and the app's writers go on meanwhile (WAL readers never block
  writers).
- In a rollback-journal mode, a read transaction would keep every writer out for
  the whole copy, so the steps take the lock one at a time and writers get in
  between; SQLite restarts a copy whose source changed meanwhile. After
  MAX_RESTARTS restarts the copy holds its read lock to the end instead: writers
  then wait (for their busy timeout) until it is done, but it always finishes.

The temporary files live in a folder of this user's beneath the temporary
directory (TMPDIR), each locked (flock) while its backup runs, and its name is
removed as soon as the copy is complete (it is streamed from the open file). A
backup killed during the copy (SIGKILL) leaves its file unlocked: the next sqlite
backup on this machine removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import Writer

log = logging.getLogger(__name__)

STEP_PAGES = 1024  # 4 MiB at the default page size
MAX_RESTARTS = 3
CHUNK = 1 << 20
SIDECARS = ("-wal", "-shm", "-journal")  # files SQLite keeps beside a database
COPY_SUFFIX = ".sqlite"
BUSY_TIMEOUT = 30.0  # how long a step waits for a writer's lock


class Copy:
    """The temporary copy, while it exists."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd  # holds the flock, and reads the copy once its name is gone

    def stream_to(self, out: Writer, cancel: CancelToken) -> str:
        """Write the whole copy to `out`; return its sha256. Its name is removed
        first: from here on a kill leaves nothing behind."""
        remove_copy(self.path)
        os.lseek(self._fd, 0, os.SEEK_SET)
        digest = hashlib.sha256()
        while chunk := os.read(self._fd, CHUNK):
            cancel.check()
            digest.update(chunk)
            out.write(chunk)
        return digest.hexdigest()


@contextlib.contextmanager
def consistent_copy(source: Path, cancel: CancelToken) -> Iterator[Copy]:
    """A consistent copy of the database `source`, in a temporary file removed when
    the block ends. BackupFailed when `source` can't be read as a database."""
    if not source.exists():
        raise BackupFailed(f"path {source} does not exist")
    if not source.is_file():
        raise BackupFailed(f"path {source} is not a file")
    folder = copies_folder()
    sweep(folder)
    fd, copy = _new_copy(folder)
    try:
        _backup(source, copy, cancel)
        yield Copy(copy, fd)
    finally:
        remove_copy(copy)
        os.close(fd)


def _new_copy(folder: Path) -> tuple[int, Path]:
    """A new, empty, locked file for the copy: its descriptor and name."""
    while True:
        fd, name = tempfile.mkstemp(prefix="copy-", suffix=COPY_SUFFIX, dir=folder)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # Another backup's sweep may have taken it for a dead one's between the two
        # calls (unlocked) and removed it: then the name is not this file's any more.
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return fd, Path(name)
        except FileNotFoundError:
            pass
        os.close(fd)


def _backup(source: Path, copy: Path, cancel: CancelToken) -> None:
    try:
        src = sqlite3.connect(
            f"{source.absolute().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT,
        )
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot open {source}: {exc}") from None
    try:
        with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as dst:
            mode = _query_one(src, source, "PRAGMA journal_mode")
            if str(mode).lower() == "wal":
                _held(src, dst, source, cancel)
            elif not _stepped(src, dst, source, cancel):
                log.info(
                    "%s changed during %d copies: copying it holding its read lock "
                    "(writers wait until the copy is done)",
                    source,
                    MAX_RESTARTS + 1,
                )
                _held(src, dst, source, cancel)
            # The copy keeps the source's journal mode; in WAL mode, everything into
            # the file itself, which is all that is streamed.
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot write the copy of {source}: {exc}") from None
    finally:
        src.close()


class _Restarted(Exception):
    """The source changed under the copy too often."""


def _stepped(
    src: sqlite3.Connection, dst: sqlite3.Connection, source: Path, cancel: CancelToken
) -> bool:
    """Copy in steps, releasing the lock between them; False after MAX_RESTARTS."""
    restarts = 0
    remaining = None

    def progress(status: int, left: int, _total: int) -> None:
        nonlocal restarts, remaining
        cancel.check()
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return  # this step copied nothing: a writer held the lock
        # A step that copied its pages and left no fewer to copy started over.
        if remaining is not None and left >= remaining:
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise _Restarted
        remaining = left

    try:
        _run(src, dst, source, progress)
    except _Restarted:
        return False
    return True


def _held(
    src: sqlite3.Connection, dst: sqlite3.Connection, source: Path, cancel: CancelToken
) -> None:
    """Copy in steps inside one read transaction: one snapshot throughout."""
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # the snapshot starts
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot read {source}: {exc}") from None
    try:
        _run(src, dst, source, lambda _s, _l, _t: cancel.check())
    finally:
        with contextlib.suppress(sqlite3.Error):
            src.execute("COMMIT")


def _run(
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    source: Path,
    progress: Callable[[int, int, int], object],
) -> None:
    try:
        src.backup(dst, pages=STEP_PAGES, progress=progress, sleep=0.05)
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot copy {source}: {_plain(exc)}") from None


def _query_one(conn: sqlite3.Connection, source: Path, sql: str) -> object:
    try:
        row = conn.execute(sql).fetchone()
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot read {source}: {_plain(exc)}") from None
    return row[0] if row else None


def _plain(exc: sqlite3.Error) -> str:
    text = str(exc)
    return "it is not a SQLite database" if text == "file is not a database" else text


def count_rows(database: Path) -> list[tuple[str, int]]:
    """Each table of `database` (SQLite's own sqlite_* tables and virtual tables left
    out: a virtual table's rows live in its shadow tables, which are counted) and
    its exact number of rows, by name."""
    try:
        with contextlib.closing(sqlite3.connect(database)) as conn:
            names = [
                str(row[0])
                for row in conn.execute(
                    "SELECT name FROM sqlite_schema WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                    " AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%'"
                    " ORDER BY name"
                )
            ]
            counted = []
            for name in names:
                quoted = '"' + name.replace('"', '""') + '"'
                (rows,) = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()
                counted.append((name, int(rows)))
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot count the rows of the copy: {exc}") from None
    return counted


def copies_folder() -> Path:
    """This user's folder for copies beneath the temporary directory: made 0700 on
    first use, and refused when it is anyone else's or reachable by others."""
    folder = Path(tempfile.gettempdir()) / f"backupctl-sqlite-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise BackupFailed(f"{folder} is not a folder of this user's, closed to others: remove it")
    return folder


def sweep(folder: Path) -> None:
    """Remove the copies of backups that were killed: those nobody holds locked, and
    what SQLite left beside a copy that is gone."""
    for entry in folder.iterdir():
        if entry.name.endswith(SIDECARS) and not os.path.lexists(_main_of(entry)):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            continue
        if not entry.name.endswith(COPY_SUFFIX):
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a backup running now
            log.info("removing %s, left by a sqlite backup that was stopped", entry)
            remove_copy(entry)
        finally:
            os.close(fd)


def _main_of(sidecar: Path) -> Path:
    name = sidecar.name
    for suffix in SIDECARS:
        name = name.removesuffix(suffix)
    return sidecar.with_name(name)


def remove_copy(copy: Path) -> None:
    """Remove a copy and whatever SQLite kept beside it."""
    for name in (str(copy), *(f"{copy}{suffix}" for suffix in SIDECARS)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
