"""Kind `files`: a directory as a tar stream."""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import DumpResult, Writer
from backupctl.kinds.preflight import field_problems
from backupctl.registry.model import App
from backupctl.wording import plural, short_list

log = logging.getLogger(__name__)


def _walk(root: Path, prefix: str = "") -> Iterator[tuple[Path, str]]:
    """Every entry below `root`, sorted, parents first; links are not followed."""
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = prefix + entry.name
        yield Path(entry.path), name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), name + "/")


def _add(tar: tarfile.TarFile, path: Path, name: str, skipped: list[str]) -> tarfile.TarInfo | None:
    """Add one entry (not what is below it); None when it is skipped."""
    info = tar.gettarinfo(str(path), arcname=name)  # None for a socket
    if info is None or info.ischr() or info.isblk():
        skipped.append(name)
        return None
    if not info.isreg():
        tar.addfile(info)
        return info
    # No following a link swapped in since the lstat, no hanging on a FIFO swapped in.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        tar.addfile(info, fh)
    return info


class FilesKind:
    extension = "tar"

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Write the app's folder to `out` as a tar archive, paths relative to it, and
        count its regular files and their bytes (the manifest).

        Links are stored as links and FIFOs as FIFOs; sockets and devices cannot be
        restored usefully and are skipped, named in one warning line (as GNU tar does).
        The folder itself is the member "." so its mode, owner and mtime come back."""
        root = Path(app.params["path"])
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a directory"
            raise BackupFailed(f"path {root} {what}")
        skipped: list[str] = []
        files = file_bytes = 0
        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                tar.add(root, arcname=".", recursive=False)
                for path, name in _walk(root):
                    cancel.check()
                    info = _add(tar, path, name, skipped)
                    if info is not None and info.isreg():  # a hard link's 2nd name: no file
                        files += 1
                        file_bytes += info.size
        except OSError as exc:
            raise BackupFailed(f"cannot read {exc.filename or root}: {exc.strerror}") from None
        if skipped:
            log.warning(
                "app %s: skipped %s (sockets and devices are not backed up): %s",
                app.id,
                plural(len(skipped), "entry", "entries"),
                short_list(skipped),
            )
        empty = None if files else f"the folder {root} holds no files"
        return DumpResult(files=files, file_bytes=file_bytes, empty=empty)

    def secrets(self, app: App) -> list[str]:
        return []

    def preflight(self, app: App) -> list[str]:
        """Why a backup would fail now: a folder missing, not a folder, or unreadable."""
        return field_problems(app)
