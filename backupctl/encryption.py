"""Client-side encryption of artifacts with age (age-encryption.org/v1), streamed.

The format is age's own, so `age -d -i KEY` decrypts any artifact, and backupctl
decrypts what the age tool encrypted. Encrypting is backupctl.agefile's: each 64 KiB
chunk is sealed on the dump's own thread as it fills (at most one chunk held, so
memory stays flat whatever the size). Decrypting is pyrage's (Python bindings of the
Rust `age` crate), whose decrypt_io streams reader -> writer while a restore pulls
bytes from a reader: a pipe and one thread join the two shapes, the pipe's buffer the
only plaintext held in memory.

Backing up needs only recipients (public keys, `age1…`). Restoring needs an identity
file (`AGE-SECRET-KEY-1…` lines, as age-keygen writes), whose content is never
logged, shown or recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import BufferedIOBase
from pathlib import Path
from typing import BinaryIO, Protocol, cast

import pyrage

from backupctl.artifacts import ENCRYPTED_SUFFIX as SUFFIX  # <name>.<ext>.zst.age
from backupctl.errors import BackupctlError, BackupFailed, UsageError

log = logging.getLogger(__name__)

IDENTITY_ENV = "BACKUPCTL_IDENTITY_FILE"
# A bigger pipe than Linux's 64 KiB default: fewer switches between the two threads.
PIPE_SIZE = 1 << 20
_NO_MATCH = "No matching keys found"  # pyrage's DecryptError for another recipient's file


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Reader(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class WrongIdentity(BackupctlError):
    """The identity given does not open the artifact (it was encrypted to others)."""


class Undecryptable(BackupctlError):
    """The artifact is not a whole, unaltered age file: damaged or truncated."""


def is_encrypted(name: str) -> bool:
    """Whether an artifact (key or URI) is age-encrypted, from its name."""
    return name.endswith(SUFFIX)


# -- recipients -------------------------------------------------------------------------------


def recipient_problem(text: object) -> str | None:
    """What is wrong with `text` as an age recipient, or None if it is one."""
    if not isinstance(text, str) or not text.strip():
        return f"not an age recipient: {text!r} (expected age1…)"
    text = text.strip()
    if not text.startswith("age1"):
        return f"not an age recipient: {_short(text)} (expected an X25519 public key, age1…)"
    try:
        pyrage.x25519.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        return f"not an age recipient: {_short(text)} ({exc})"
    # What the encryption itself reads of it. Imported here: `cryptography` costs about
    # 12 MB of memory, which a backup without encryption need not pay.
    from backupctl.agefile import x25519_public_key

    try:
        x25519_public_key(text)
    except ValueError as exc:
        return f"{exc}: {_short(text)}"
    return None


def _short(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:20] + "…")


def recipients_problems(value: object) -> tuple[list[str], list[str]]:
    """A list of recipients as written in a configuration or registry: the recipients
    and the problems (each naming the item)."""
    if not isinstance(value, list) or not value:
        return [], ['must be a non-empty list of age recipients, e.g. ["age1…"]']
    found: list[str] = []
    problems: list[str] = []
    for n, item in enumerate(value, start=1):
        if (problem := recipient_problem(item)) is not None:
            problems.append(f"item {n}: {problem}")
        else:
            found.append(str(item).strip())
    return found, problems


def read_recipients_file(path: str) -> tuple[list[str], list[str]]:
    """The recipients in a file (one a line, `#` comments, blank lines) and the problems,
    each naming the file and line. A file without any recipient is a problem: an
    encryption that was asked for never silently turns off."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], [f"{path}: no such recipients file"]
    except OSError as exc:
        return [], [f"{path}: cannot read it: {exc.strerror}"]
    except UnicodeDecodeError:
        return [], [f"{path}: not UTF-8 text"]
    found: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if (problem := recipient_problem(line)) is not None:
            problems.append(f"{path}:{number}: {problem}")
        else:
            found.append(line)
    if not found and not problems:
        problems.append(f"{path}: lists no recipient")
    return found, problems


# -- identities -------------------------------------------------------------------------------


class Identities:
    """The private keys of an identity file. Never printed: repr shows the file only."""

    def __init__(self, path: str, keys: Sequence[pyrage.x25519.Identity]) -> None:
        self.path = path
        self._keys = list(keys)

    def keys(self) -> list[pyrage.x25519.Identity]:
        return list(self._keys)

    def __repr__(self) -> str:
        return f"Identities({self.path!r}, {len(self._keys)} keys)"

    __str__ = __repr__


def load_identities(path: str) -> Identities:
    """Read an age identity file (AGE-SECRET-KEY-1… lines, `#` comments), as age-keygen
    writes it. UsageError (exit 2) for a file that can't be read or holds no key; a
    line's content is never quoted. Warns when the file is readable by group or others."""
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = fh.read()
    except FileNotFoundError:
        raise UsageError(f"--identity {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--identity {path}: is a folder, not an identity file") from None
    except OSError as exc:
        raise UsageError(f"--identity {path}: cannot read it: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "identity file %s can be read by others (mode %04o): chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--identity {path}: not an age identity file (not text)") from None
    keys: list[pyrage.x25519.Identity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if not line.startswith("AGE-SECRET-KEY-1"):
                raise pyrage.IdentityError("not AGE-SECRET-KEY-1…")
            keys.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            # Never the line itself: it may be most of a private key.
            raise UsageError(
                f"--identity {path}: line {number} is not an age identity "
                "(AGE-SECRET-KEY-1…; passphrase-protected and SSH keys are not supported)"
            ) from None
    if not keys:
        raise UsageError(f"--identity {path}: holds no age identity (AGE-SECRET-KEY-1…)")
    return Identities(path, keys)


# -- streams ----------------------------------------------------------------------------------


def _pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # Linux only; a smaller one works
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd


class _Relay:
    """The decryption thread's side of the source: remembers the first error it met, so
    the reader gets that error (a storage read that failed), not pyrage's wrapping of
    it; once stopped, reads nothing more so an abandoned stream ends at once."""

    def __init__(self, inner: Reader) -> None:
        self._inner = inner
        self.error: BaseException | None = None
        self.stopped = False

    def read(self, n: int = -1, /) -> bytes:
        if self.stopped:
            return b""
        try:
            return self._inner.read(n)
        except BaseException as exc:
            self.error = self.error or exc
            raise


@contextmanager
def encrypting(out: Writer, recipients: Sequence[str]) -> Iterator[BinaryIO]:
    """A writer whose bytes reach `out` encrypted to `recipients`, as an age file.

    The file is complete (its last chunk written) when the block ends without an
    error; on an error it is left incomplete, for the caller to discard. An error of
    `out` is raised as itself, by the write that met it."""
    from backupctl.agefile import AgeWriter, x25519_public_key

    try:
        writer = AgeWriter(out, [x25519_public_key(r) for r in recipients])
    except ValueError as exc:  # the configuration checked them: not seen in practice
        raise BackupFailed(f"age encryption failed: {exc}") from None
    yield cast(BinaryIO, writer)
    writer.finish()


class Decrypting:
    """A reader of the plaintext of an age file read from `source`.

    Bytes come out as each 64 KiB chunk is authenticated; a damaged or truncated file
    raises Undecryptable when the damage is reached (at the end, for a truncation), a
    wrong identity WrongIdentity at the first read. Close it (or use it as a context
    manager) to stop the decryption early."""

    def __init__(self, source: Reader, identities: Identities) -> None:
        self._identities = identities
        read_fd, write_fd = _pipe()
        self._out = os.fdopen(read_fd, "rb")
        self._relay = _Relay(source)
        self._failure: list[BaseException] = []
        sink = os.fdopen(write_fd, "wb")
        keys = identities.keys()

        def run() -> None:
            try:
                pyrage.decrypt_io(cast(BufferedIOBase, self._relay), sink, keys)
            except BaseException as exc:  # raised to the reader at the end of the data
                self._failure.append(exc)
            finally:
                with contextlib.suppress(OSError):  # the reader closed early
                    sink.close()

        self._thread = threading.Thread(target=run, name="age-decrypt", daemon=True)
        self._thread.start()

    def read(self, n: int = -1, /) -> bytes:
        data = self._out.read(n)
        if not data:
            self._thread.join()
            self._raise_failure()
        return data

    def readable(self) -> bool:
        return True

    def _raise_failure(self) -> None:
        if self._relay.error is not None:  # the storage read failed: that is the news
            raise self._relay.error
        if not self._failure:
            return
        exc = self._failure[0]
        if isinstance(exc, pyrage.DecryptError) and _NO_MATCH in str(exc):
            raise WrongIdentity(
                f"the identity in {self._identities.path} does not decrypt it: "
                "it was encrypted to other recipients"
            )
        raise Undecryptable(f"it does not decrypt: damaged or truncated ({exc})")

    def close(self) -> None:
        """Stop reading: the decryption thread ends at its next write."""
        self._relay.stopped = True
        self._out.close()
        self._thread.join()

    def __enter__(self) -> Decrypting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decrypting(source: Reader, identities: Identities) -> Decrypting:
    """The plaintext of the age file `source`, as a reader (see Decrypting). Reusable by
    anything that reads an artifact back: restore, verify --deep, a drill."""
    return Decrypting(source, identities)
