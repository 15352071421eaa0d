"""Backup kinds: each writes one app's data to a binary stream."""

from __future__ import annotations

from typing import BinaryIO, Protocol

from backupctl.cancel import CancelToken
from backupctl.registry.model import App


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Kind(Protocol):
    extension: str

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> None:
        """Write the app's data to `out`; raise BackupFailed on failure."""


def kind_for(app: App) -> Kind:
    """Return the backup kind that handles `app`."""
    if app.kind == "files":
        from backupctl.kinds.files import FilesKind

        return FilesKind()
    if app.kind == "command":
        from backupctl.kinds.command import CommandKind

        return CommandKind()
    raise ValueError(f"unknown kind {app.kind!r}")


__all__ = ["BinaryIO", "Kind", "Writer", "kind_for"]
