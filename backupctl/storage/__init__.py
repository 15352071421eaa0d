"""Storage: atomic put of a stream, get, list and delete, under one base URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from backupctl.kinds import Writer


class Storage(Protocol):
    def open_write(self, key: str) -> AbstractContextManager[Writer]:
        """Write `key` atomically: visible only if the block exits cleanly."""

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Read `key` as a binary stream."""

    def uri(self, key: str) -> str:
        """The URL of `key`, as recorded in the ledger."""

    def key_for(self, uri: str) -> str:
        """The key of a URL this storage produced."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` (including unfinished temporary ones)."""

    def delete(self, key: str) -> None:
        """Remove `key` (and nothing else); a missing key is not an error."""

    def discard_attempts(self, prefix: str, keep: str | None) -> list[str]:
        """Remove every artifact or leftover starting with `prefix` except `keep`."""


def open_storage(url: str) -> Storage:
    """Return the storage for a file:// or s3:// URL."""
    if url.startswith("file://"):
        from backupctl.storage.local import LocalStorage

        return LocalStorage.from_url(url)
    raise ValueError(f"unsupported storage URL {url!r} (file:// is supported)")
