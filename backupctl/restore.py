"""Restore: stream an artifact back, checking its sha256, into a database, folder or file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import zstandard

from backupctl.atomic import create_temp, publish_new
from backupctl.errors import BackupctlError, BackupFailed, UsageError
from backupctl.kinds import kind_of_artifact
from backupctl.kinds.postgres import find_program, libpq_env, pg_restore_argv, split_password
from backupctl.redact import redact_text, redact_url
from backupctl.storage import Storages

CHUNK = 1 << 20


class RestoreFailed(BackupctlError):
    """The restore did not complete; what was restored is rolled back where possible."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"restore failed: {reason}")


@dataclass(frozen=True)
class Artifact:
    backup_id: int
    app_id: str
    uri: str
    size: int
    sha256: str

    @property
    def kind(self) -> str:
        return kind_of_artifact(self.uri)


def artifact_from_row(row: dict[str, Any] | None, what: str) -> Artifact:
    """The artifact of a ledger row, or a clear error when there is none to restore."""
    if row is None:
        raise UsageError(f"no backup recorded for {what}")
    if row["status"] != "succeeded":
        raise UsageError(
            f"the backup for {what} is {row['status']}, not succeeded: nothing to restore"
        )
    return Artifact(row["id"], row["app_id"], row["artifact_uri"], row["size_bytes"], row["sha256"])


class _Checked:
    """A reader that hashes what passes through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


@contextmanager
def _plain_stream(storages: Storages, artifact: Artifact) -> Iterator[tuple[BinaryIO, _Checked]]:
    storage, key = storages.for_uri(artifact.uri)
    with ExitStack() as stack:
        try:
            raw = stack.enter_context(storage.open_read(key))
        except FileNotFoundError:
            raise RestoreFailed(f"the artifact is missing from storage: {artifact.uri}") from None
        except BackupctlError:
            raise
        except Exception as exc:  # boto's NoSuchKey, permissions, a network error
            raise RestoreFailed(f"cannot read {artifact.uri}: {redact_text(str(exc))}") from None
        checked = _Checked(raw)
        reader = zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], checked), closefd=False)
        yield cast(BinaryIO, reader), checked


def _verdict(artifact: Artifact, checked: _Checked) -> None:
    checked.drain()
    actual = checked.sha256.hexdigest()
    if actual != artifact.sha256 or checked.size != artifact.size:
        raise RestoreFailed(
            f"checksum mismatch for {artifact.uri}: the ledger says sha256 {artifact.sha256} "
            f"({artifact.size} bytes), storage has {actual} ({checked.size} bytes)"
        )


def verify_artifact(storages: Storages, artifact: Artifact) -> None:
    """Read the whole artifact and compare its sha256 and size with the ledger's."""
    with _plain_stream(storages, artifact) as (_reader, checked):
        _verdict(artifact, checked)


def _copy(reader: BinaryIO, write: Callable[[bytes], object]) -> None:
    try:
        while chunk := reader.read(CHUNK):
            write(chunk)
    except zstandard.ZstdError as exc:
        raise RestoreFailed(f"the artifact is corrupt: {exc}") from None


def restore_artifact(
    storages: Storages, artifact: Artifact, target: str, *, clean: bool, pg_bin_dir: str | None
) -> str:
    """Verify, then restore `artifact` into `target`; return a one-line description."""
    verify_artifact(storages, artifact)  # refuse a damaged artifact before touching the target
    if artifact.kind == "postgres":
        return _restore_postgres(storages, artifact, target, clean, pg_bin_dir)
    if artifact.kind == "files":
        return _restore_files(storages, artifact, Path(target))
    return _restore_output(storages, artifact, target)


def _database_is_empty(conninfo: str, password: str | None) -> bool:
    import psycopg

    try:
        with psycopg.connect(conninfo, password=password, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname NOT LIKE 'pg\\_toast%%' AND c.relkind IN ('r','p','v','m','S','f')"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise RestoreFailed(
            f"cannot connect to the target database: {redact_text(str(exc))}"
        ) from None
    return row is not None and row[0] == 0


def _restore_postgres(
    storages: Storages, artifact: Artifact, dsn: str, clean: bool, pg_bin_dir: str | None
) -> str:
    try:
        conninfo, password = split_password(dsn)
    except BackupFailed as exc:
        raise UsageError(f"--to: {exc}") from None
    if not clean and not _database_is_empty(conninfo, password):
        raise UsageError(
            f"the target database {redact_url(dsn)} is not empty: "
            "restore into an empty database, or pass --clean to replace what it holds"
        )
    try:
        argv = pg_restore_argv(find_program("pg_restore", pg_bin_dir), conninfo, clean)
    except BackupFailed as exc:
        raise RestoreFailed(str(exc)) from None
    # stderr goes to a file: a pipe nobody reads could fill and stall pg_restore.
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=libpq_env(password),
        )
        assert proc.stdin is not None
        try:
            with _plain_stream(storages, artifact) as (reader, checked):
                _copy(reader, proc.stdin.write)
                # pg_restore runs in one transaction: killed before EOF, nothing commits.
                _verdict(artifact, checked)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its exit status and stderr say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        stderr.seek(0)
        tail = stderr.read().decode("utf-8", "replace").strip()[-2000:]
    if code != 0:
        raise RestoreFailed(f"pg_restore exited with status {code}: {redact_text(tail, [dsn])}")
    return f"restored {artifact.app_id} (backup {artifact.backup_id}) into {redact_url(dsn)}"


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    # Refuses absolute paths (tarfile's data filter would only strip the slash), then
    # "..", and links leaving the folder (the data filter).
    if member.name.startswith("/") or (member.issym() and member.linkname.startswith("/")):
        raise RestoreFailed(f"refusing unsafe archive member {member.name!r}: absolute path")
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        raise RestoreFailed(f"refusing unsafe archive member {member.name!r}: {exc}") from None


def _restore_files(storages: Storages, artifact: Artifact, folder: Path) -> str:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{folder} exists and is not an empty folder: restore into a new one")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _plain_stream(storages, artifact) as (reader, checked):
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:
                    tar.extractall(folder, filter=_safe_member)
            except tarfile.TarError as exc:
                raise RestoreFailed(f"the archive is damaged: {exc}") from None
            except zstandard.ZstdError as exc:
                raise RestoreFailed(f"the artifact is corrupt: {exc}") from None
            _verdict(artifact, checked)
    except BaseException:
        # Nothing half-restored stays behind: the folder was empty or new.
        for entry in folder.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        if created:
            folder.rmdir()
        raise
    return f"restored {artifact.app_id} (backup {artifact.backup_id}) into {folder}"


def _restore_output(storages: Storages, artifact: Artifact, target: str) -> str:
    if target == "-":
        with _plain_stream(storages, artifact) as (reader, checked):
            _copy(reader, sys.stdout.buffer.write)
            sys.stdout.buffer.flush()
            _verdict(artifact, checked)
        return f"restored {artifact.app_id} (backup {artifact.backup_id}) to standard output"
    path = Path(target)
    if os.path.lexists(path):
        raise UsageError(f"{path} already exists: restore to a new file")
    # A new, randomly named file that no planted link can redirect, published under
    # its name only if nothing took that name meanwhile.
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as out, _plain_stream(storages, artifact) as (reader, checked):
            _copy(reader, out.write)
            _verdict(artifact, checked)
            out.flush()
            os.fsync(out.fileno())
        try:
            publish_new(tmp, path)
        except FileExistsError as exc:
            raise UsageError(str(exc)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return f"restored {artifact.app_id} (backup {artifact.backup_id}) to {path}"
