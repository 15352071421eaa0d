"""Restore an artifact's data into a file, atomically: written under a new random name
beside it that no planted link can redirect, fsynced, checked, and only then given
its name (or to standard output). The kinds whose restore is a file share it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from backupctl.atomic import create_temp, fsync_dir, publish_new
from backupctl.errors import UsageError
from backupctl.restore import Source


def restore_to_stdout(source: Source) -> str:
    """All of the data to standard output."""
    source.copy_to(sys.stdout.buffer.write)
    sys.stdout.buffer.flush()
    return f"{source.label} to standard output"


def restore_to_file(
    source: Source,
    path: Path,
    *,
    replace: bool = False,
    check: Callable[[Path], None] | None = None,
    before_replace: Callable[[Path], None] | None = None,
    refused: str = "restore to a new file",
) -> str:
    """Write the data to the new file `path`, published whole. An existing `path` is
    refused (UsageError, ending in `refused`), unless `replace`: then it is replaced
    in one rename, after `before_replace(path)`. `check(temporary file)` may refuse
    the data before it is published (raising RestoreFailed); nothing is left behind
    either way."""
    if os.path.lexists(path) and not replace:
        raise UsageError(f"{path} already exists: {refused}")
    if replace and os.path.lexists(path) and not path.is_file():
        raise UsageError(f"{path} exists and is not a file: restore to a new file")
    # A new, randomly named file that no planted link can redirect, published under
    # its name only if nothing took that name meanwhile.
    try:
        fd, tmp = create_temp(path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            source.copy_to(out.write)
            out.flush()
            os.fsync(out.fileno())
        if check is not None:
            check(tmp)
        if replace and os.path.lexists(path):
            if before_replace is not None:
                before_replace(path)
            os.replace(tmp, path)
            fsync_dir(path.parent)
        else:
            try:
                publish_new(tmp, path)
            except FileExistsError as exc:
                raise UsageError(str(exc)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return f"{source.label} to {path}"
