"""Files published whole: written under a new temporary name that no planted link can
redirect (O_CREAT | O_EXCL | O_NOFOLLOW, a random name), fsynced, then renamed."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TMP_SUFFIX = ".tmp"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def temp_name(final: Path) -> Path:
    """A fresh hidden name beside `final`: .<name>.<random>.tmp"""
    return final.with_name(f".{final.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")


def create_temp(final: Path, mode: int = 0o600) -> tuple[int, Path]:
    """Create a new temporary file beside `final`; return its descriptor and path.
    It never opens an existing file or follows a link."""
    while True:
        tmp = temp_name(final)
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:  # 48 random bits taken: try another
            continue


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new one."""
    fd, tmp = create_temp(path, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # the umask narrowed what os.open asked for
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def publish_new(tmp: Path, final: Path) -> None:
    """Give the finished temporary file `tmp` the name `final`, which must not exist
    (a hard link refuses to replace anything), then drop the temporary name."""
    try:
        os.link(tmp, final, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(f"{final} already exists: restore to a new file") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(final):
            raise FileExistsError(f"{final} already exists: restore to a new file") from None
        os.rename(tmp, final)
    else:
        tmp.unlink()
    fsync_dir(final.parent)
