"""Kind `files`: a directory as a tar stream."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import DumpResult, Writer
from backupctl.kinds.preflight import field_problems
from backupctl.registry.model import App


class FilesKind:
    extension = "tar"

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Write the app's directory to `out` as a tar archive, paths relative to it;
        count the regular files and their bytes (the manifest)."""
        root = Path(app.params["path"])
        if not root.is_dir():
            what = "does not exist" if not root.exists() else "is not a directory"
            raise BackupFailed(f"path {root} {what}")

        files = file_bytes = 0

        def check(info: tarfile.TarInfo) -> tarfile.TarInfo:
            nonlocal files, file_bytes
            cancel.check()
            if info.isreg():  # (a hard link's second name is not a file of its own)
                files += 1
                file_bytes += info.size
            return info

        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for entry in sorted(os.listdir(root)):
                    tar.add(root / entry, arcname=entry, recursive=True, filter=check)
        except OSError as exc:
            raise BackupFailed(f"cannot read {exc.filename or root}: {exc.strerror}") from None
        empty = None if files else f"the folder {root} holds no files"
        return DumpResult(files=files, file_bytes=file_bytes, empty=empty)

    def secrets(self, app: App) -> list[str]:
        return []

    def preflight(self, app: App) -> list[str]:
        """Why a backup would fail now: a folder missing, not a folder, or unreadable."""
        return field_problems(app)
