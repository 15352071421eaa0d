"""file:// storage: temp file in the target folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from backupctl.atomic import TMP_SUFFIX, create_temp
from backupctl.atomic import fsync_dir as _fsync_dir
from backupctl.errors import BackupFailed
from backupctl.storage import Entry
from backupctl.storage.object_lock import ObjectLock

_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(BackupFailed):
    """The storage has no room left: the storage's problem, not the app's."""


class _Upload:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.size = 0

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        return len(data)

    def set_sha256(self, sha256: str) -> None:
        """The ledger holds it; a file has nowhere else to keep it."""


class LocalStorage:
    """Artifacts as files under one root folder; files 0600, folders 0700."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._prefix: str | None = None

    @classmethod
    def from_url(cls, url: str) -> LocalStorage:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// storage must be local, got host {parts.netloc!r}")
        return cls(Path(unquote(parts.path)))

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the storage folder")
        return path

    def _makedirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            _fsync_dir(path.parent)

    @contextmanager
    def open_write(self, key: str) -> Iterator[_Upload]:
        with self._full_is_ours(key):
            final = self._path(key)
            self._makedirs(final.parent)
            fd, tmp = create_temp(final)
            try:
                upload = _Upload(fd)
                yield upload
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
            os.close(fd)
            os.rename(tmp, final)
            _fsync_dir(final.parent)

    @contextmanager
    def _full_is_ours(self, key: str) -> Iterator[None]:
        # A full disk must read as the storage's fault, not as a failing dump (a
        # files app's tar would otherwise report it as "cannot read ...").
        try:
            yield
        except OSError as exc:
            if exc.errno in _FULL:
                raise StorageFull(
                    f"storage {self.root.as_uri()} is full ({os.strerror(exc.errno)}) "
                    f"while writing {key}"
                ) from None
            raise

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self._path(key).open("rb") as fh:
            yield fh

    def uri(self, key: str) -> str:
        return (self.root / key).as_uri()

    def key_for(self, uri: str) -> str:
        # A URI as uri() writes it is the root's URI and the key: sliced, not parsed
        # (prune asks for every backup). One with escapes, a query or fragment, empty
        # or dot segments (a temporary file's too) is parsed.
        prefix = self._uri_prefix
        if uri.startswith(prefix):
            key = uri[len(prefix) :]
            if not (
                "%" in key or "?" in key or "#" in key or "//" in key or "/." in key
            ) and not key.startswith("."):
                return key
        path = Path(unquote(urlsplit(uri).path))
        return path.relative_to(self.root).as_posix()

    @property
    def _uri_prefix(self) -> str:
        if self._prefix is None:
            root = self.root.as_uri()
            self._prefix = root if root.endswith("/") else root + "/"
        return self._prefix

    def keys(self, prefix: str) -> Iterator[str]:
        folder, _, start = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return
        for entry in sorted(os.listdir(base)):
            name = entry[1:] if entry.startswith(".") and entry.endswith(TMP_SUFFIX) else entry
            if name.startswith(start):
                yield f"{folder}/{entry}" if folder else entry

    def lock(self, key: str) -> ObjectLock | None:
        """Files carry no lock: nothing keeps a file from prune."""
        return None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        folders: dict[Path, list[str]] = {}
        for key in keys:
            try:
                path = self._path(key)
                path.unlink()
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                failed[key] = str(exc)
                continue
            folders.setdefault(path.parent, []).append(key)
        for folder, removed in sorted(folders.items()):  # once per folder, not per file
            try:
                _fsync_dir(folder)
            except OSError as exc:
                failed.update((key, str(exc)) for key in removed)
        return failed

    def discard_attempts(self, prefix: str, keep: str | None) -> list[str]:
        removed = [key for key in list(self.keys(prefix)) if key != keep]
        for key in removed:
            self.delete(key)
        return removed

    def entries(self) -> Iterator[Entry]:
        if not self.root.is_dir():
            return
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                try:
                    st = path.lstat()
                except FileNotFoundError:  # removed while we looked
                    continue
                yield Entry(
                    path.relative_to(self.root).as_posix(),
                    datetime.fromtimestamp(st.st_mtime, UTC),
                )

    def remove(self, entry: Entry) -> None:
        self.delete(entry.key)
