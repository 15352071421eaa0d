"""Extract a `files` backup (a tar stream) the way GNU tar does, and as safely.

Links are data: symbolic links are restored as links whatever they point to, hard
links as hard links, FIFOs as FIFOs. What keeps that safe:

- a member whose own name is absolute or climbs out with ``..`` is refused;
- nothing is ever written through a link: symbolic links are created last, a member
  beneath a symbolic link of the archive is refused, every parent folder is checked
  to be a real folder, and files are opened with ``O_NOFOLLOW | O_EXCL``;
- a hard link must point to a regular file this archive already restored.

Modes of files and folders come back as recorded, minus setuid and setgid; folders
get theirs last, so a read-only folder can still be filled. As root the recorded
numeric owners come back too (unless `same_owner` is false). Runs of zero blocks in a
file are skipped with a seek, so a sparse file stays sparse where the filesystem
allows it. Character and block devices are skipped with a warning.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

log = logging.getLogger(__name__)

BLOCK = 4096
CHUNK = 1 << 20
ZERO_BLOCK = bytes(BLOCK)
# Set-id bits never come back: a restore must not mint a setuid binary.
MODE_MASK = 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)


class UnsafeMember(Exception):
    """A member that could write outside the target, or through a link."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"refusing unsafe archive member {name!r}: {reason}")


class UnsafeTarget(Exception):
    """A target folder that someone else could change while it is being filled."""


@dataclass
class Extracted:
    """What an extraction restored, and what it skipped."""

    files: int = 0
    folders: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    fifos: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Meta:
    mode: int
    uid: int
    gid: int
    mtime: float


def _parts(name: str) -> list[str]:
    """The member's path below the target, as components; refuses absolute and `..`."""
    if name.startswith("/"):
        raise UnsafeMember(name, "absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeMember(name, "its path climbs out of the folder with '..'")
    return parts


class _Extractor:
    def __init__(self, dest: Path, *, same_owner: bool) -> None:
        self.dest = dest
        self.same_owner = same_owner
        self.report = Extracted()
        self.links: dict[tuple[str, ...], tuple[str, _Meta]] = {}  # made last
        self.folders: dict[tuple[str, ...], _Meta] = {}  # attributes set last
        self.regular: set[tuple[str, ...]] = set()  # hard-link targets

    def path(self, parts: list[str] | tuple[str, ...]) -> Path:
        return self.dest.joinpath(*parts)

    def parent_ready(self, name: str, parts: list[str]) -> None:
        """Make sure every folder above the member is a real folder, creating it if need be."""
        for depth in range(1, len(parts)):
            above = tuple(parts[:depth])
            if above in self.links:
                raise UnsafeMember(name, f"it lies beneath the link {'/'.join(above)!r}")
            where = self.path(above)
            try:
                st = os.lstat(where)
            except FileNotFoundError:
                os.mkdir(where, 0o700)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeMember(
                    name, f"it would be written through the link {'/'.join(above)!r}"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeMember(name, f"{'/'.join(above)!r} is not a folder")

    def clear(self, name: str, target: Path) -> None:
        """A later member of the same name replaces an earlier one (as GNU tar does)."""
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeMember(name, "a folder of that name is already restored")
        os.unlink(target)
        self.regular.discard(tuple(target.relative_to(self.dest).parts))

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _parts(member.name)
        meta = _Meta(member.mode & MODE_MASK, member.uid, member.gid, float(member.mtime))
        if not parts:  # the archive's own root: the target folder itself
            if member.isdir():
                self.folders[()] = meta
            return
        key = tuple(parts)
        self.parent_ready(member.name, parts)
        if key in self.links:
            raise UnsafeMember(member.name, "a link of that name is already in the archive")
        target = self.path(parts)
        if member.isdir():
            if not os.path.isdir(target) or os.path.islink(target):
                self.clear(member.name, target)
                os.mkdir(target, 0o700)
            self.folders[key] = meta
            self.report.folders += 1
        elif member.isreg():
            self.clear(member.name, target)
            source = tar.extractfile(member)
            assert source is not None  # a regular member always has data
            self.write_file(target, source, member.size, meta)
            self.regular.add(key)
            self.report.files += 1
        elif member.issym():
            self.clear(member.name, target)
            self.links[key] = (member.linkname, meta)
        elif member.islnk():
            self.hard_link(member, target)
        elif member.isfifo():
            self.clear(member.name, target)
            os.mkfifo(target, 0o600)
            self.finish_path(target, meta)
            self.report.fifos += 1
        else:
            self.report.skipped.append(member.name)

    def write_file(self, target: Path, source: IO[bytes], size: int, meta: _Meta) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, 0o600)
        try:
            _write_sparse(fd, source.read)
            os.ftruncate(fd, size)  # a trailing hole, and the exact length
            self.finish_fd(fd, meta)
        finally:
            os.close(fd)

    def hard_link(self, member: tarfile.TarInfo, target: Path) -> None:
        try:
            to = tuple(_parts(member.linkname))
        except UnsafeMember:
            raise UnsafeMember(
                member.name, f"a hard link to {member.linkname!r}, outside the folder"
            ) from None
        if to not in self.regular or self.path(to) == target:
            raise UnsafeMember(
                member.name, f"a hard link to {member.linkname!r}, not a file restored before it"
            )
        self.clear(member.name, target)
        os.link(self.path(to), target, follow_symlinks=False)
        self.report.hardlinks += 1

    def finish_fd(self, fd: int, meta: _Meta) -> None:
        if self.same_owner:
            os.fchown(fd, meta.uid, meta.gid)
        os.fchmod(fd, meta.mode)
        os.utime(fd, (meta.mtime, meta.mtime))

    def finish_path(self, target: Path, meta: _Meta) -> None:
        if self.same_owner:
            os.lchown(target, meta.uid, meta.gid)
        os.chmod(target, meta.mode)
        os.utime(target, (meta.mtime, meta.mtime), follow_symlinks=False)

    def make_links(self) -> None:
        for key, (linkname, meta) in self.links.items():
            self.parent_ready("/".join(key), list(key))
            target = self.path(key)
            if os.path.lexists(target):
                raise UnsafeMember("/".join(key), "something of that name is already restored")
            os.symlink(linkname, target)
            if self.same_owner:
                os.lchown(target, meta.uid, meta.gid)
            os.utime(target, (meta.mtime, meta.mtime), follow_symlinks=False)
            self.report.symlinks += 1

    def finish_folders(self) -> None:
        # Deepest first: a folder's mtime is final once its children are in place.
        for key in sorted(self.folders, key=len, reverse=True):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.path(key), flags)
            try:
                self.finish_fd(fd, self.folders[key])
            finally:
                os.close(fd)


def _write_sparse(fd: int, read: Callable[[int], bytes]) -> None:
    """Copy `read` into `fd`, seeking over whole zero blocks instead of writing them."""
    while chunk := read(CHUNK):
        view = memoryview(chunk)
        start = 0
        while start < len(view):
            block = view[start : start + BLOCK]
            start += len(block)
            if len(block) == BLOCK and block == ZERO_BLOCK:
                os.lseek(fd, BLOCK, os.SEEK_CUR)
                continue
            while block:
                block = block[os.write(fd, block) :]


def empty_folder(folder: Path) -> None:
    """Remove everything in `folder` (an extraction's leftovers), read-only folders too."""
    # Folders may already carry the archive's modes (0500, 000): open them up first.
    for dirpath, dirnames, _files in os.walk(folder):  # never follows links
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o700, follow_symlinks=False)
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def extract(stream: BinaryIO, dest: Path, *, same_owner: bool | None = None) -> Extracted:
    """Extract the tar `stream` into the existing, empty folder `dest`.

    `same_owner`: restore the recorded numeric owners; by default only as root, where
    it can. Raises UnsafeMember (nothing is undone here: the caller owns `dest`),
    tarfile.TarError for a damaged archive, OSError for what the filesystem refused.

    Paths are checked, then used: that is safe because nobody else can change them
    meanwhile. `dest` must be this user's and writable by nobody else, and every
    folder the extraction makes stays 0700 and this user's until the very end,
    when the archive's modes and owners are set, deepest first."""
    if same_owner is None:
        same_owner = os.geteuid() == 0
    st = os.lstat(dest)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise UnsafeTarget(
            f"{dest} must be a folder of this user's that no one else can write "
            "(others could swap a folder in it for a link while it is filled)"
        )
    work = _Extractor(dest, same_owner=same_owner)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            work.member(tar, member)
    work.make_links()
    work.finish_folders()
    if work.report.skipped:
        shown = ", ".join(work.report.skipped[:5]) + (
            " and more" if len(work.report.skipped) > 5 else ""
        )
        log.warning("skipped devices in the archive (not restored): %s", shown)
    return work.report
