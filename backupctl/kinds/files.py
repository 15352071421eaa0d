"""Kind `files`: a directory as a tar stream; restored into a new or empty folder as
GNU tar would, and as safely (backupctl.untar).

Manifest: `files` and `file_bytes`, the regular files of the tar and their size."""

from __future__ import annotations

import functools
import grp
import logging
import os
import pwd
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import DumpResult, KindOptions, Writer
from backupctl.kinds.fields import KindSpec, path
from backupctl.kinds.preflight import field_problems
from backupctl.wording import plural, short_list

if TYPE_CHECKING:
    from backupctl.drill import DrillTargets
    from backupctl.manifest import Manifest
    from backupctl.registry.model import App
    from backupctl.restore import RestoreRequest, Source

log = logging.getLogger(__name__)


def _walk(root: Path) -> Iterator[tuple[str, int, str]]:
    """(name in the archive, its folder's fd, its name there) for everything below
    `root`, sorted, parents first. Folders are opened relative to their parent and
    checked to be the folder listed, so a folder swapped for a link meanwhile (by
    whoever writes into the backed-up tree) is never followed out of it."""
    for folder, dirnames, filenames, fd in os.fwalk(root, onerror=_raise, follow_symlinks=False):
        dirnames.sort()  # fwalk descends in this order
        prefix = os.path.relpath(folder, root)
        prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
        for entry in sorted(dirnames + filenames):
            yield prefix + entry, fd, entry


def _raise(exc: OSError) -> None:
    raise exc  # a folder that cannot be read fails the backup, never shrinks it


class _Tar:
    """Entries of the walk as tar members, from what lstat and fstat say (never a path
    that could lead elsewhere than the walk's own folder fds)."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.inodes: dict[tuple[int, int], str] = {}  # first name of a hard-linked file

    def add(self, name: str, folder_fd: int, entry: str) -> tarfile.TarInfo | None:
        """Add one entry (not what is below it); None when it is skipped (a socket, a
        device, something that changed into one of those while being read)."""
        st = os.stat(entry, dir_fd=folder_fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            return self._file(name, folder_fd, entry, st)
        info = self._info(name, st)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(entry, dir_fd=folder_fd)
        else:
            return None
        self.tar.addfile(info)
        return info

    def _file(
        self, name: str, folder_fd: int, entry: str, st: os.stat_result
    ) -> tarfile.TarInfo | None:
        # No following a link swapped in since the lstat, no hanging on a FIFO either.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(entry, flags, dir_fd=folder_fd)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            info = self._info(name, st)
            inode = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and inode in self.inodes:
                info.type, info.linkname = tarfile.LNKTYPE, self.inodes[inode]
                self.tar.addfile(info)
                return info
            if st.st_nlink > 1:
                self.inodes[inode] = name
            info.size = st.st_size
            try:
                self.tar.addfile(info, fh)
            except OSError as exc:
                if exc.errno is None:  # tarfile's "unexpected end of data"
                    raise BackupFailed(f"{name} shrank while it was read; run again") from None
                raise
        return info

    @staticmethod
    def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = st.st_mtime
        info.uname, info.gname = _user_name(st.st_uid), _group_name(st.st_gid)
        return info


@functools.cache
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.cache
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


class FilesKind:
    extension = "tar"
    one_pass = True  # extracted into a temporary folder, renamed into place last
    fields = KindSpec({"path": path}, frozenset({"path"}), paths=frozenset({"path"}))

    def __init__(self, options: KindOptions | None = None) -> None:
        self._options = options or KindOptions()

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
                members = _Tar(tar)
                for name, folder_fd, entry in _walk(root):
                    cancel.check()
                    try:
                        info = members.add(name, folder_fd, entry)
                    except OSError as exc:
                        raise BackupFailed(f"cannot read {root / name}: {exc.strerror}") from None
                    if info is None:
                        skipped.append(name)
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
        return DumpResult(manifest={"files": files, "file_bytes": file_bytes}, empty=empty)

    def secrets(self, app: App) -> list[str]:
        return []

    def preflight(self, app: App) -> list[str]:
        """Why a backup would fail now: a folder missing, not a folder, or unreadable."""
        return field_problems(app)

    def restore(self, source: Source, target: str, request: RestoreRequest) -> str:
        """Extract into the folder `target`, which must be new or empty: into a
        temporary folder beside it, renamed into place only once the artifact was
        verified; on any failure that folder is removed and `target` is untouched."""
        import zstandard

        from backupctl.errors import UsageError
        from backupctl.restore import RestoreFailed
        from backupctl.untar import UnsafeMember, UnsafeTarget, extract

        folder = Path(os.path.abspath(target))
        if folder.is_symlink():  # it would be renamed over, not filled
            raise UsageError(f"{folder} is a symbolic link: restore into a new or empty folder")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise UsageError(f"{folder} exists and is not an empty folder: restore into a new one")
        work = _work_folder(folder)
        try:
            with source.reader() as reader:
                try:
                    extract(reader, work, same_owner=request.owners.same_owner)
                except UnsafeTarget as exc:
                    raise UsageError(str(exc)) from None
                except UnsafeMember as exc:
                    raise RestoreFailed(str(exc)) from None
                except tarfile.TarError as exc:
                    raise RestoreFailed(f"the archive is damaged: {exc}") from None
                except zstandard.ZstdError as exc:
                    raise RestoreFailed(f"the artifact is corrupt: {exc}") from None
                except OSError as exc:
                    where = f" {exc.filename}" if exc.filename else ""
                    raise RestoreFailed(f"cannot write{where}: {exc.strerror or exc}") from None
            _into_place(work, folder)  # verified: the reader's clean end checked it
        except BaseException:
            _remove(work)  # nothing half-restored stays behind, also on SIGTERM
            raise
        return f"{source.label} into {folder}"

    def drill(
        self,
        source: Source,
        app: App,
        manifest: Manifest | None,
        targets: DrillTargets,
        restored: dict[str, Any],
    ) -> None:
        """Extract into a temporary folder; its regular files and their bytes must
        be the manifest's."""
        from backupctl.drill import SCRATCH_PREFIX, DrillMismatch, note_no_manifest
        from backupctl.restore import Owners, RestoreRequest
        from backupctl.untar import empty_folder

        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        try:
            self.restore(source, str(scratch), RestoreRequest(owners=Owners(same_owner=False)))
            files, size = _count_files(scratch)
        finally:
            if scratch.is_dir():
                empty_folder(scratch)  # the backup's read-only folders too
            shutil.rmtree(scratch, ignore_errors=True)
        restored["files"] = files
        restored["bytes"] = size
        fields = manifest.fields if manifest is not None else {}
        if "files" not in fields or "file_bytes" not in fields:
            note_no_manifest(restored, "files and bytes")
            return
        if (files, size) != (fields["files"], fields["file_bytes"]):
            raise DrillMismatch(
                f"restored {files} files of {size} bytes, the backup recorded "
                f"{fields['files']} files of {fields['file_bytes']} bytes"
            )


def _count_files(folder: Path) -> tuple[int, int]:
    """Regular files under `folder` and their bytes; a hard-linked file once (as tar
    stores it once)."""
    seen: set[tuple[int, int]] = set()
    size = 0
    for parent, _dirs, names in os.walk(folder):
        for name in names:
            st = os.lstat(os.path.join(parent, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                size += st.st_size
    return len(seen), size


WORK_PREFIX = ".backupctl-restore-"


def _work_folder(folder: Path) -> Path:
    """A new private folder to extract into: beside `folder` (its parent is created
    if need be), or inside it when `folder` is an empty mount point (a rename cannot
    leave a filesystem). UsageError when there is none to make, or when others could
    swap it for a link while it is filled."""
    from backupctl.errors import UsageError

    inside = folder.is_dir() and os.lstat(folder).st_dev != os.lstat(folder.parent).st_dev
    where = folder if inside else folder.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        st = os.lstat(where)
        name = f"{WORK_PREFIX}{folder.name}-" if not inside else WORK_PREFIX
    except OSError as exc:
        raise UsageError(f"cannot create {where}: {exc.strerror}") from None
    # Its parent must be ours (or root's) and writable by no one else, or sticky as
    # /tmp is: else someone could rename the folder being filled and put a link there.
    sticky = bool(st.st_mode & stat.S_ISVTX)
    hint = "restore into a folder whose parent is yours (or root's) and only you can write"
    if st.st_uid not in (0, os.geteuid()):
        raise UsageError(
            f"{where} belongs to another user (uid {st.st_uid}), who could swap the folder "
            f"being restored for a link: {hint}"
        )
    if st.st_mode & 0o022 and not sticky:
        raise UsageError(
            f"{where} can be written by others, who could swap the folder being restored "
            f"for a link: {hint}"
        )
    try:
        return Path(tempfile.mkdtemp(prefix=name, dir=where))
    except OSError as exc:
        raise UsageError(f"cannot create a folder in {where}: {exc.strerror}") from None


def _into_place(work: Path, folder: Path) -> None:
    """Give the extracted folder `work` its name `folder` (new or empty): one rename,
    or, for a mount point, its entries moved up one by one and its attributes after."""
    from backupctl.restore import RestoreFailed

    try:
        if work.parent != folder:
            os.rename(work, folder)  # replaces an empty folder; refused if it filled meanwhile
            return
        st = os.lstat(work)
        for entry in os.scandir(work):
            os.rename(entry.path, folder / entry.name)
        os.rmdir(work)
        if os.geteuid() == 0:
            os.chown(folder, st.st_uid, st.st_gid)
        os.chmod(folder, stat.S_IMODE(st.st_mode))
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError as exc:
        raise RestoreFailed(
            f"cannot move the restored files into {folder}: {exc.strerror}"
        ) from None


def _remove(work: Path) -> None:
    """Remove an extraction's folder, read-only folders in it too."""
    from backupctl.untar import empty_folder

    if work.is_dir():
        os.chmod(work, 0o700)  # the archive's own mode for it may be read-only
        empty_folder(work)
        shutil.rmtree(work, ignore_errors=True)
