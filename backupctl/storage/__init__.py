"""Storage: atomic put of a stream, get, list and delete, under one base URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from backupctl.storage.object_lock import ObjectLock
from backupctl.storage.s3 import S3Options


@dataclass(frozen=True)
class Entry:
    """Something stored: a key, when it was last written, and for an S3 multipart
    upload never completed, its upload id (it holds parts but is no object)."""

    key: str
    modified: datetime
    upload_id: str | None = None


class Upload(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def set_sha256(self, sha256: str) -> None:
        """Record the stored bytes' sha256 with the object, where the storage can."""


class Storage(Protocol):
    def open_write(self, key: str) -> AbstractContextManager[Upload]:
        """Write `key` atomically: visible only if the block exits cleanly."""

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Read `key` as a binary stream."""

    def uri(self, key: str) -> str:
        """The URL of `key`, as recorded in the ledger."""

    def key_for(self, uri: str) -> str:
        """The key of a URL this storage produced."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` (including unfinished temporary ones)."""

    def lock(self, key: str) -> ObjectLock | None:
        """What keeps `key` from being deleted now (an S3 Object Lock), or None."""

    def delete(self, key: str) -> None:
        """Remove `key` (and nothing else); a missing key is not an error. Raises
        ObjectLocked, changing nothing, while `lock(key)` holds it."""

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        """Remove `keys` as `delete` does each, in as few requests as the storage
        allows; return why each key that stays could not be removed (an
        ObjectLocked's message, an error's)."""

    def discard_attempts(self, prefix: str, keep: str | None) -> list[str]:
        """Remove every artifact or leftover starting with `prefix` except `keep`."""

    def entries(self) -> Iterator[Entry]:
        """Everything stored, temporary files and unfinished uploads included."""

    def remove(self, entry: Entry) -> None:
        """Delete an entry `entries` listed (or abort its unfinished upload)."""


def storage_url_problem(url: str) -> str | None:
    """Why `url` can't name a storage, or None: file:// must name an absolute local
    folder, s3:// a bucket. Checked when the configuration and registry are loaded."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url!r} is not a valid URL"
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return (
                f"{url!r} names host {parts.netloc!r}: a file:// URL needs an absolute "
                "path, with three slashes (file:///var/backups/backupctl)"
            )
        if not parts.path.startswith("/") or parts.path == "/":
            return f"{url!r} must name an absolute folder, e.g. file:///var/backups/backupctl"
        if parts.query or parts.fragment:
            return f"{url!r}: a file:// URL takes no ? or #"
        return None
    if parts.scheme == "s3":
        if not parts.netloc:
            return f"{url!r} names no bucket: use s3://bucket/prefix"
        if parts.query or parts.fragment:
            return f"{url!r}: an s3:// URL takes no ? or #"
        return None
    return f"must be a file:// or s3:// URL, got {url!r}"


def open_storage(url: str, s3: S3Options | None = None) -> Storage:
    """Return the storage for a file:// or s3:// URL."""
    if url.startswith("file://"):
        from backupctl.storage.local import LocalStorage

        return LocalStorage.from_url(url)
    if url.startswith("s3://"):
        from backupctl.storage.s3 import S3Storage

        return S3Storage.from_url(url, s3)
    raise ValueError(f"unsupported storage URL {url!r} (use file:// or s3://)")


class Storages:
    """One Storage per URL, shared by the backups of a run; apps may name their own."""

    def __init__(self, default_url: str, s3: S3Options | None = None) -> None:
        self.default_url = default_url
        self._s3 = s3
        self._open: dict[str, Storage] = {}
        self._lock = threading.Lock()

    @property
    def may_lock(self) -> bool:
        """Whether any artifact here can be under an Object Lock backupctl asks about
        (only S3 with [s3] object_lock: files never are, nor S3 without it)."""
        return bool(self._s3 is not None and self._s3.object_lock)

    def all_of(self, urls: Iterator[str | None] | list[str | None]) -> dict[str, Storage]:
        """The default storage and those of `urls` (apps' own), by URL."""
        wanted = {self.default_url, *(url for url in urls if url)}
        return {url: self.get(url) for url in sorted(wanted)}

    def get(self, url: str | None = None) -> Storage:
        url = url or self.default_url
        with self._lock:
            if url not in self._open:
                self._open[url] = open_storage(url, self._s3)
            return self._open[url]

    def for_uri(self, uri: str) -> tuple[Storage, str]:
        """The storage holding an artifact URI, and the artifact's key in it."""
        if uri.startswith("s3://"):
            if "?" in uri or "#" in uri:
                from urllib.parse import urlsplit

                bucket = urlsplit(uri).netloc
            else:  # the same, without urlsplit's cost (prune asks for every backup)
                bucket = uri[5:].split("/", 1)[0]
            storage = self.get(f"s3://{bucket}")
        elif uri.startswith("file://"):
            storage = self.get("file:///")
        else:
            raise ValueError(f"unsupported artifact URI {uri!r}")
        return storage, storage.key_for(uri)
