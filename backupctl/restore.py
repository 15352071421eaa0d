"""Restore: the generic flow. Find the backup, then let its kind restore the data,
read back decrypted and decompressed, its stored bytes' sha256 and size checked as
they stream (each kind's module owns where the data goes: backupctl.kinds).

A kind that can undo what it wrote (`one_pass`: postgres in one transaction, files
in a temporary folder) reads the artifact once: the last piece of the data is handed
to it only once the stored bytes matched the ledger, so it cannot finish (commit,
rename into place) on a damaged artifact. The others read it twice: verified first,
then restored.

An encrypted artifact (<name>.zst.age) is decrypted on the way with the identities
given (--identity); without them it is not read at all."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import zstandard

from backupctl.artifacts import ENCRYPTED_SUFFIX
from backupctl.errors import BackupctlError, UsageError
from backupctl.kinds import KindOptions, kind_named, kind_of_artifact
from backupctl.redact import redact_text
from backupctl.storage import Storages

if TYPE_CHECKING:
    from backupctl.encryption import Decrypting, Identities
    from backupctl.ledger import Ledger

CHUNK = 1 << 20


class RestoreFailed(BackupctlError):
    """The restore did not complete; what was restored is rolled back where possible."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"restore failed: {reason}")


class RestoreStopped(BaseException):
    """A signal (SIGTERM) asked the restore to stop. A BaseException: no `except
    Exception` on the way may swallow it, and every clean-up still runs (pg_restore
    killed, a database this restore created dropped, a temporary folder removed)."""


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT wait until the block is done (then their handlers run): for
    a step whose result the clean-up must know, such as creating a database."""
    import signal

    held = {signal.SIGTERM, signal.SIGINT}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


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
        copy_data(stream.reader, _discard)
        _verdict(artifact, stream)


def _discard(_data: bytes) -> None:
    pass


def copy_data(reader: BinaryIO, write: Callable[[bytes], object]) -> None:
    """Copy `reader` (a Source's data) to `write`; a corrupt artifact is RestoreFailed."""
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


@dataclass(frozen=True)
class RestoreRequest:
    """What the operator asked of a restore, for the kind to honour where it applies.

    `clean`: replace what the target holds (a database's objects, an existing file)
    instead of refusing a target that is not empty. `create`: create a database that
    does not exist (postgres). `owners`: see Owners. `say` hears what the restore did
    on the way ("created database newdb")."""

    clean: bool = False
    create: bool = True
    owners: Owners = field(default_factory=Owners)
    say: Callable[[str], None] = _quiet


class _HeldBack:
    """An artifact's data, read ahead by one chunk: the last piece is handed out only
    after `verify()` (the stored bytes' check) passed, so a reader that finishes at the
    data's end (pg_restore commits, a tar is complete) never finishes on a damaged
    artifact."""

    def __init__(self, inner: BinaryIO, verify: Callable[[], None]) -> None:
        self._inner = inner
        self._verify = verify
        self._piece = b""
        self._at = 0
        self._ahead: bytes | None = None
        self.verified = False

    def verify(self) -> None:
        """Read the stored bytes to their end and check them (once)."""
        if not self.verified:
            self._verify()
            self.verified = True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        if self._at >= len(self._piece) and not self._next():
            return b""
        data = self._piece[self._at : self._at + n]
        self._at += len(data)
        return data

    def _next(self) -> bool:
        if self._ahead is None:
            self._ahead = self._inner.read(CHUNK)
        if not self._ahead:
            self.verify()  # an empty stream: nothing held back, checked all the same
            return False
        self._piece, self._at = self._ahead, 0
        self._ahead = self._inner.read(CHUNK)
        if not self._ahead:
            self.verify()  # before the last piece is handed out
        return True


class Source:
    """An artifact, as a kind's restore reads it: its data (decrypted and
    decompressed) as often as the kind needs, each read checked."""

    def __init__(
        self, storages: Storages, artifact: Artifact, identities: Identities | None = None
    ) -> None:
        self.storages = storages
        self.artifact = artifact
        self.identities = identities

    @contextmanager
    def reader(self) -> Iterator[BinaryIO]:
        """The artifact's data, its stored bytes hashed as they are read: the last
        piece of the data comes only once their sha256 and size match the ledger's
        (RestoreFailed, "checksum mismatch", when they differ); leaving the block
        reads them to their end if the kind stopped short. Do that before the
        restore is made final (a transaction committed, a file renamed into place).
        A failure inside the block on a damaged artifact (pg_restore choking on it,
        a tar error) is reported as that checksum mismatch, its cause."""
        with plain_stream(self.storages, self.artifact, self.identities) as stream:
            held = _HeldBack(stream.reader, lambda: _verdict(self.artifact, stream))
            try:
                yield cast(BinaryIO, held)
            except UsageError:
                raise
            except Exception:
                damaged = None if held.verified else _damaged(self.artifact, stream.checked)
                if damaged is not None:
                    raise damaged from None
                raise
            held.verify()

    def copy_to(self, write: Callable[[bytes], object]) -> None:
        """All of the data to `write`, then the check of the stored bytes."""
        with self.reader() as reader:
            copy_data(reader, write)

    def head(self, size: int) -> bytes:
        """The first `size` bytes of the data (fewer if it is shorter; none if they
        do not decompress)."""
        return _head(self.storages, self.artifact, size, self.identities)

    @property
    def label(self) -> str:
        """How a restore's line starts: 'restored shop (backup 17)'."""
        return f"restored {self.artifact.app_id} (backup {self.artifact.backup_id})"


def _damaged(artifact: Artifact, checked: _Checked) -> RestoreFailed | None:
    """The checksum mismatch, when the stored bytes (read on to their end) are not the
    ledger's; None when they are, or cannot be read on."""
    try:
        _verdict(artifact, checked)
    except RestoreFailed as exc:
        return exc
    except Exception:  # a storage error now: the failure that brought us here says more
        return None
    return None


def open_source(
    storages: Storages,
    artifact: Artifact,
    identities: Identities | None = None,
    *,
    verify_first: bool = True,
) -> Source:
    """`artifact`, checked before any target is touched: an encrypted one needs
    `identities` (UsageError, exit 2) that open it (RestoreFailed, exit 1), and it
    must be in storage (RestoreFailed). `verify_first`: also read it whole and match
    its stored bytes with the ledger's sha256 and size (RestoreFailed), for a kind
    that cannot undo a restore; a `one_pass` kind has them checked as they stream."""
    need_identity(artifact, identities)
    if verify_first:
        verify_artifact(storages, artifact)  # refuse a damaged artifact before the target
    if artifact.encrypted or not verify_first:
        _head(storages, artifact, 1, identities)  # there, and opened by the identity
    return Source(storages, artifact, identities)


def restore_artifact(
    storages: Storages,
    artifact: Artifact,
    target: str,
    *,
    clean: bool,
    kind_options: KindOptions | None = None,
    create: bool = True,
    say: Callable[[str], None] = _quiet,
    owners: Owners | None = None,
    identities: Identities | None = None,
) -> str:
    """Restore `artifact` into `target` with its kind, verified (see open_source);
    return a one-line description.

    `kind_options`: where the kinds find their programs (e.g. pg_restore). `clean`,
    `create`, `say`, `owners`: see RestoreRequest. An encrypted artifact is
    decrypted with `identities`: without them UsageError (exit 2), with ones that
    do not open it RestoreFailed (exit 1), before the target is touched."""
    kind = kind_named(artifact.kind, kind_options)
    source = open_source(storages, artifact, identities, verify_first=not kind.one_pass)
    request = RestoreRequest(clean=clean, create=create, owners=owners or Owners(), say=say)
    return kind.restore(source, target, request)


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
