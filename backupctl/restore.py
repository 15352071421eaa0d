"""Restore: stream an artifact back, checking its sha256, into a database, folder or file.

An encrypted artifact (<name>.zst.age) is decrypted on the way with the identities
given (--identity); without them it is not read at all."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import zstandard

from backupctl.artifacts import ENCRYPTED_SUFFIX
from backupctl.atomic import create_temp, publish_new
from backupctl.errors import BackupctlError, BackupFailed, UsageError
from backupctl.kinds import kind_of_artifact
from backupctl.kinds.pgarchive import HEADER_SIZE, archive_format
from backupctl.kinds.pgconnect import (
    Unreachable,
    connect,
    create_database,
    database_exists,
    drop_database,
    is_empty,
)
from backupctl.kinds.pgtools import PgTools, Tool, choose_pg_restore, major_of_recorded
from backupctl.kinds.postgres import libpq_env, pg_restore_argv, split_password
from backupctl.redact import redact_text, redact_url
from backupctl.storage import Storages
from backupctl.untar import UnsafeMember, UnsafeTarget, empty_folder, extract

if TYPE_CHECKING:
    from backupctl.encryption import Decrypting, Identities
    from backupctl.ledger import Ledger

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# pg_restore: error: could not execute query: ERROR:  role "shopowner" does not exist
_MISSING_ROLE = re.compile(r'role "[^"]*" does not exist')


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
    written_by: str | None = None  # "pg_dump 16.2"; None for other kinds and older rows
    run_date: date | None = None

    @property
    def kind(self) -> str:
        return kind_of_artifact(self.uri.removesuffix(ENCRYPTED_SUFFIX))

    @property
    def encrypted(self) -> bool:
        """Encrypted with age: reading it back needs an identity."""
        return self.uri.endswith(ENCRYPTED_SUFFIX)

    @property
    def label(self) -> str:
        return f"backup {self.backup_id} of {self.app_id}"


def need_identity(artifact: Artifact, identities: Identities | None) -> None:
    """UsageError (exit 2) when `artifact` is encrypted and no identity was given."""
    if artifact.encrypted and identities is None:
        from backupctl.encryption import IDENTITY_ENV

        raise UsageError(f"{artifact.label} is encrypted: give --identity FILE (or {IDENTITY_ENV})")


def artifact_from_row(row: dict[str, Any] | None, what: str) -> Artifact:
    """The artifact of a ledger row, or a clear error when there is none to restore."""
    if row is None:
        raise UsageError(f"no backup recorded for {what}")
    if row["status"] != "succeeded":
        raise UsageError(
            f"the backup for {what} is {row['status']}, not succeeded: nothing to restore"
        )
    return Artifact(
        row["id"],
        row["app_id"],
        row["artifact_uri"],
        row["size_bytes"],
        row["sha256"],
        row.get("written_by"),
        row.get("run_date"),
    )


def choose_artifact(
    ledger: Ledger, app_id: str, run_date: date | None, backup_id: int | None
) -> Artifact:
    """The backup to restore: an ad-hoc one by id, a night's, or (neither given) the
    app's latest succeeded nightly backup."""
    if backup_id is not None:
        row = ledger.backup_by_id(backup_id)
        if row is not None and (row["app_id"] != app_id or row["trigger"] != "adhoc"):
            row = None
        return artifact_from_row(row, f"app {app_id!r}, ad-hoc backup {backup_id}")
    if run_date is not None:
        return artifact_from_row(
            ledger.nightly_artifact(app_id, run_date), f"app {app_id!r} on {run_date}"
        )
    row = ledger.latest_nightly_succeeded(app_id)
    if row is None:
        raise UsageError(
            f"no succeeded nightly backup of app {app_id!r} is recorded: "
            "name one with --date D or --adhoc ID"
        )
    return artifact_from_row(row, f"app {app_id!r}")


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
def _raw_stream(storages: Storages, artifact: Artifact) -> Iterator[_Checked]:
    """The stored bytes, hashed as they are read."""
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
        yield _Checked(raw)


@dataclass
class PlainStream:
    """An artifact being read back: its data (decompressed, and decrypted if it was
    encrypted), and the stored bytes' running sha256 and size."""

    reader: BinaryIO
    checked: _Checked
    decrypted: Decrypting | None = None


@contextmanager
def plain_stream(
    storages: Storages, artifact: Artifact, identities: Identities | None = None
) -> Iterator[PlainStream]:
    """Read `artifact` back as its data; for an encrypted one, decrypted with
    `identities` (UsageError without them, RestoreFailed when they do not open it or
    it does not decrypt). Also what a drill reads an artifact with."""
    need_identity(artifact, identities)
    with ExitStack() as stack:
        checked = stack.enter_context(_raw_stream(storages, artifact))
        source: Any = checked
        decrypted = None
        if artifact.encrypted:
            from backupctl.encryption import decrypting

            assert identities is not None
            decrypted = stack.enter_context(decrypting(checked, identities))
            source = decrypted
        reader = zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], source), closefd=False)
        try:
            yield PlainStream(cast(BinaryIO, reader), checked, decrypted)
        except BackupctlError as exc:
            from backupctl.encryption import Undecryptable, WrongIdentity

            if isinstance(exc, WrongIdentity | Undecryptable):
                raise RestoreFailed(f"{artifact.label}: {exc}") from None
            raise


def _verdict(artifact: Artifact, stream: PlainStream | _Checked) -> None:
    checked = stream if isinstance(stream, _Checked) else stream.checked
    if isinstance(stream, PlainStream) and stream.decrypted is not None:
        while stream.decrypted.read(CHUNK):  # to the age file's end, authenticated
            pass
    checked.drain()
    actual = checked.sha256.hexdigest()
    if actual != artifact.sha256 or checked.size != artifact.size:
        raise RestoreFailed(
            f"checksum mismatch for {artifact.uri}: the ledger says sha256 {artifact.sha256} "
            f"({artifact.size} bytes), storage has {actual} ({checked.size} bytes)"
        )


def verify_artifact(storages: Storages, artifact: Artifact) -> None:
    """Read the whole artifact and compare its sha256 and size with the ledger's (the
    stored bytes: no key needed, nothing decrypted or decompressed)."""
    with _raw_stream(storages, artifact) as checked:
        _verdict(artifact, checked)


def verify_deep(
    storages: Storages, artifact: Artifact, identities: Identities | None = None
) -> None:
    """verify_artifact, and decrypt (if encrypted) and decompress the whole artifact to
    prove it can be read back. RestoreFailed naming what is wrong."""
    with plain_stream(storages, artifact, identities) as stream:
        _copy(stream.reader, _discard)
        _verdict(artifact, stream)


def _discard(_data: bytes) -> None:
    pass


def _copy(reader: BinaryIO, write: Callable[[bytes], object]) -> None:
    try:
        while chunk := reader.read(CHUNK):
            write(chunk)
    except zstandard.ZstdError as exc:
        raise RestoreFailed(f"the artifact is corrupt: {exc}") from None


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class Owners:
    """Who owns what a restore creates.

    postgres: `no_owner` and `no_privileges` are pg_restore's own options, for a server
    that lacks the app's roles (a fresh server, a drill's scratch one). files:
    `same_owner` restores the recorded numeric owners; None means "as root only", as
    GNU tar does."""

    no_owner: bool = False
    no_privileges: bool = False
    same_owner: bool | None = None


def restore_artifact(
    storages: Storages,
    artifact: Artifact,
    target: str,
    *,
    clean: bool,
    pg_tools: PgTools | None = None,
    create: bool = True,
    say: Callable[[str], None] = _quiet,
    owners: Owners | None = None,
    identities: Identities | None = None,
) -> str:
    """Verify, then restore `artifact` into `target`; return a one-line description.

    postgres: with a pg_restore from `pg_tools` that reads the archive, into a database
    that is created when it does not exist (unless not `create`). `say` hears what
    the restore did on the way ("created database newdb"). `owners`: whose the
    restored objects and files become (see Owners). An encrypted artifact is
    decrypted with `identities`: without them UsageError (exit 2), with ones that do
    not open it RestoreFailed (exit 1), before the target is touched."""
    owners = owners or Owners()
    need_identity(artifact, identities)
    verify_artifact(storages, artifact)  # refuse a damaged artifact before touching the target
    if artifact.encrypted:
        _head(storages, artifact, 1, identities)  # a wrong identity, before the target too
    if artifact.kind == "postgres":
        return _restore_postgres(
            storages,
            artifact,
            target,
            clean,
            pg_tools or PgTools(),
            create,
            say,
            owners,
            identities,
        )
    if artifact.kind == "files":
        return _restore_files(storages, artifact, Path(target), owners.same_owner, identities)
    return _restore_output(storages, artifact, target, identities)


def _head(
    storages: Storages, artifact: Artifact, size: int, identities: Identities | None = None
) -> bytes:
    """The first `size` bytes of the artifact's data (fewer if it is shorter)."""
    head = b""
    with plain_stream(storages, artifact, identities) as stream:
        try:
            while len(head) < size and (chunk := stream.reader.read(size - len(head))):
                head += chunk
        except zstandard.ZstdError:
            return b""
    return head


def pg_restore_for(
    storages: Storages, artifact: Artifact, tools: PgTools, identities: Identities | None = None
) -> Tool:
    """A pg_restore that can read the artifact: of the major version of the pg_dump
    recorded with it (or newer); for a backup without one, as new as its archive
    header's format needs. RestoreFailed naming what is needed when none fits."""
    try:
        found = tools.find("pg_restore")
        major = major_of_recorded(artifact.written_by)
        if major is not None:
            why = f"this backup was written by pg_dump {major}"
            return choose_pg_restore(found, major, range(major, major + 1), why)
        fmt = archive_format(_head(storages, artifact, HEADER_SIZE, identities))
        readers = fmt.readers() if fmt is not None else None
        if fmt is None or readers is None:
            # A format this table does not know: the newest may read it, else its
            # own error says why.
            return choose_pg_restore(found, 0, range(0), "")
        need, writers = readers
        why = f"this backup's archive (format {fmt}) needs pg_restore {need} or newer"
        return choose_pg_restore(found, need, writers, why)
    except BackupFailed as exc:
        raise RestoreFailed(str(exc)) from None


def _missing_database(conninfo: str, password: str | None) -> str | None:
    """The name of the target database if the server is there but the database is
    not (asked through the maintenance database); None otherwise."""
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(conninfo).get("dbname")
    if not dbname:
        return None
    try:
        return None if database_exists(conninfo, password, str(dbname)) else str(dbname)
    except Unreachable:
        return None


def _prepare_database(
    conninfo: str,
    password: str | None,
    dsn: str,
    clean: bool,
    create: bool,
    say: Callable[[str], None],
) -> str | None:
    """Make sure the target database exists and may be restored into; return its
    name when this restore created it."""
    try:
        with connect(conninfo, password) as conn:
            empty = is_empty(conn)
    except Unreachable as exc:
        dbname = _missing_database(conninfo, password)
        if dbname is None:
            raise RestoreFailed(f"cannot connect to the target database: {exc}") from None
        if not create:
            raise UsageError(
                f"the target database {dbname} does not exist (--no-create): "
                "create it first, or restore without --no-create"
            ) from None
        try:
            made = create_database(conninfo, password, dbname)
        except BackupFailed as failed:
            raise RestoreFailed(str(failed)) from None
        if not made:  # created by someone else meanwhile: it is theirs, check it
            return _prepare_database(conninfo, password, dsn, clean, False, say)
        say(f"created database {dbname}")
        return dbname
    if not clean and not empty:
        raise UsageError(
            f"the target database {redact_url(dsn)} is not empty: "
            "restore into an empty database, or pass --clean to replace what it holds"
        )
    return None


def _restore_postgres(
    storages: Storages,
    artifact: Artifact,
    dsn: str,
    clean: bool,
    tools: PgTools,
    create: bool,
    say: Callable[[str], None],
    owners: Owners,
    identities: Identities | None,
) -> str:
    try:
        conninfo, password = split_password(dsn)
    except BackupFailed as exc:
        raise UsageError(f"--to: {exc}") from None
    # Chosen first: a restore that cannot run must not create a database.
    tool = pg_restore_for(storages, artifact, tools, identities)
    log.info("restoring with pg_restore %s (%s)", tool.version, tool.folder)
    created = _prepare_database(conninfo, password, dsn, clean, create, say)
    try:
        _run_pg_restore(
            storages, artifact, tool, conninfo, password, dsn, clean, owners, identities
        )
    except BaseException:
        if created is not None:  # leave the server as it was: without that database
            try:
                drop_database(conninfo, password, created)
                say(f"dropped database {created} again: the restore into it failed")
            except BackupFailed as exc:
                log.warning("could not drop database %s again: %s", created, exc)
        raise
    return (
        f"restored {artifact.app_id} (backup {artifact.backup_id}) into {redact_url(dsn)}"
        f" with pg_restore {tool.version}"
    )


def _run_pg_restore(
    storages: Storages,
    artifact: Artifact,
    tool: Tool,
    conninfo: str,
    password: str | None,
    dsn: str,
    clean: bool,
    owners: Owners,
    identities: Identities | None,
) -> None:
    argv = pg_restore_argv(
        tool.path,
        conninfo,
        clean,
        no_owner=owners.no_owner,
        no_privileges=owners.no_privileges,
    )
    # stderr goes to a file: a pipe nobody reads could fill and stall pg_restore.
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=libpq_env(password),
            # pg_restore reads on while we decompress the next chunk (with Linux's
            # 64 KiB pipe it waited for every chunk, as `zstd -dc |` never makes it).
            pipesize=CHUNK,
        )
        assert proc.stdin is not None
        try:
            with plain_stream(storages, artifact, identities) as stream:
                _copy(stream.reader, proc.stdin.write)
                # pg_restore runs in one transaction: killed before EOF, nothing commits.
                _verdict(artifact, stream)
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
        # One line, as every error: pg_restore's lines joined.
        tail = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
        shown = redact_text(tail, [dsn, password or ""])
        hint = ""
        if _MISSING_ROLE.search(tail) and not (owners.no_owner and owners.no_privileges):
            hint = (
                "; the backup's roles do not exist on this server: create them first, "
                "or restore with --no-owner --no-privileges"
            )
        raise RestoreFailed(f"pg_restore exited with status {code}: {shown}{hint}")


def _restore_files(
    storages: Storages,
    artifact: Artifact,
    folder: Path,
    same_owner: bool | None,
    identities: Identities | None,
) -> str:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{folder} exists and is not an empty folder: restore into a new one")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if created:
            folder.chmod(0o700)  # the archive's own mode for it is set last
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc.strerror}") from None
    try:
        with plain_stream(storages, artifact, identities) as stream:
            try:
                extract(stream.reader, folder, same_owner=same_owner)
            except UnsafeTarget as exc:
                raise UsageError(str(exc)) from None
            except UnsafeMember as exc:
                raise RestoreFailed(str(exc)) from None
            except tarfile.TarError as exc:
                raise RestoreFailed(f"the archive is damaged: {exc}") from None
            except zstandard.ZstdError as exc:
                raise RestoreFailed(f"the artifact is corrupt: {exc}") from None
            except OSError as exc:
                where = f" {exc.filename}" if exc.filename else ""
                raise RestoreFailed(f"cannot write{where}: {exc.strerror or exc}") from None
            _verdict(artifact, stream)
    except BaseException:
        # Nothing half-restored stays behind: the folder was empty or new.
        empty_folder(folder)
        if created:
            folder.rmdir()
        raise
    return f"restored {artifact.app_id} (backup {artifact.backup_id}) into {folder}"


def _restore_output(
    storages: Storages, artifact: Artifact, target: str, identities: Identities | None
) -> str:
    if target == "-":
        with plain_stream(storages, artifact, identities) as stream:
            _copy(stream.reader, sys.stdout.buffer.write)
            sys.stdout.buffer.flush()
            _verdict(artifact, stream)
        return f"restored {artifact.app_id} (backup {artifact.backup_id}) to standard output"
    path = Path(target)
    if os.path.lexists(path):
        raise UsageError(f"{path} already exists: restore to a new file")
    # A new, randomly named file that no planted link can redirect, published under
    # its name only if nothing took that name meanwhile.
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as out, plain_stream(storages, artifact, identities) as stream:
            _copy(stream.reader, out.write)
            _verdict(artifact, stream)
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
