"""Which pg_dump or pg_restore to run, chosen by PostgreSQL major version.

The candidates, in this order: the configured `pg_bin_dir` (the app's, else the
global one), every folder on PATH, then the binaries of the embedded Postgres (the
pgserver package), unless that fallback is turned off. Each candidate's version is
what it prints for `--version`.

pg_dump refuses a server newer than itself, and pg_restore an archive written by a
newer pg_dump, so neither "the first one found" nor "the configured one" is enough:
a Debian host with PostgreSQL 15 client tools on PATH must still dump a 16 server
with a 16 pg_dump when one is there, and say which it needs when none is.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from backupctl.errors import BackupFailed
from backupctl.kinds import child_environment

# "pg_dump (PostgreSQL) 16.2", "pg_restore (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)",
# "pg_dump (PostgreSQL) 17beta1"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)")
VERSION_TIMEOUT = 10.0


@dataclass(frozen=True)
class Tool:
    """One program found, with the PostgreSQL version it reports."""

    name: str  # pg_dump or pg_restore
    path: str
    version: str  # "16.2"; 9.6-era versions keep three parts ("9.6.24")

    @property
    def major(self) -> int:
        """The major version: 16 for 16.2, 9 for 9.6 (older than anything that matters)."""
        return int(self.version.split(".")[0])

    @property
    def folder(self) -> str:
        return str(Path(self.path).parent)

    def recorded(self) -> str:
        """How the ledger records which program wrote a backup: "pg_dump 16.2"."""
        return f"{self.name} {self.version}"


def parse_version(text: str) -> str | None:
    """The version in a program's `--version` output, or None if it shows none."""
    match = _VERSION.search(text)
    return match.group(1) if match else None


def major_of_recorded(recorded: str | None, name: str = "pg_dump") -> int | None:
    """The major version in a recorded "pg_dump 16.2", or None (not recorded, or not
    a pg_dump's)."""
    match = re.fullmatch(rf"{name} (\d+)(?:\.\d+)*", recorded or "")
    return int(match.group(1)) if match else None


def server_version_text(version_num: int) -> str:
    """160002 -> "16.2"; 90624 -> "9.6.24" (server_version_num's two layouts)."""
    if version_num >= 100000:
        return f"{version_num // 10000}.{version_num % 10000}"
    return f"{version_num // 10000}.{version_num // 100 % 100}.{version_num % 100}"


def embedded_bin_dir() -> Path | None:
    """The bin folder of the PostgreSQL that the pgserver package ships, if installed."""
    spec = find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if folder.is_dir() else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@cache
def _probe(path: str, _stamp: tuple[int, int, int]) -> str | None:
    # Cached per file and its identity (inode, size, mtime): a run of many backups
    # asks each program once, and an upgraded package is asked again.
    try:
        done = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(done.stdout) if done.returncode == 0 else None


def tool_version(path: str) -> str | None:
    """The PostgreSQL version program `path` reports, or None if it reports none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _probe(path, (st.st_ino, st.st_size, st.st_mtime_ns))


@dataclass(frozen=True)
class PgTools:
    """Where to look for pg_dump and pg_restore."""

    bin_dir: str | None = None  # pg_bin_dir in effect: the app's, else the global one
    embedded: bool = True  # the embedded Postgres's binaries as the last candidates

    def candidates(self, name: str, path_env: str | None = None) -> list[str]:
        """Paths of program `name` in search order, each file once. Raises BackupFailed
        when a configured pg_bin_dir does not hold it (a setting that is wrong is said
        so, never silently passed over)."""
        found: list[Path] = []
        if self.bin_dir:
            configured = Path(self.bin_dir) / name
            if not _executable(configured):
                raise BackupFailed(f"{name} not found in pg_bin_dir {self.bin_dir}")
            found.append(configured)
        path_env = os.environ.get("PATH", "") if path_env is None else path_env
        found += [Path(d) / name for d in path_env.split(os.pathsep) if d]
        embedded = embedded_bin_dir() if self.embedded else None
        if embedded is not None:
            found.append(embedded / name)
        paths: list[str] = []
        seen: set[str] = set()
        for candidate in found:
            if not _executable(candidate):
                continue
            real = os.path.realpath(candidate)
            if real not in seen:
                seen.add(real)
                paths.append(str(candidate))
        return paths

    def find(self, name: str) -> list[Tool]:
        """Every candidate of `name` that reports a version, in search order; raises
        BackupFailed when there is none."""
        tools = [
            Tool(name, path, version)
            for path in self.candidates(name)
            if (version := tool_version(path)) is not None
        ]
        if not tools:
            where = "" if self.embedded else " (the embedded Postgres's are turned off)"
            raise BackupFailed(
                f"{name} not found{where}: install the PostgreSQL client tools or set pg_bin_dir"
            )
        return tools


def found_text(tools: Sequence[Tool]) -> str:
    """ "pg_restore 15 (/usr/bin), pg_restore 15 (/usr/lib/postgresql/15/bin)"."""
    return ", ".join(f"{t.name} {t.major} ({t.folder})" for t in tools)


def _newest(tools: Sequence[Tool]) -> Tool:
    # The newest major; among equals the first in search order (the configured one).
    best = max(t.major for t in tools)
    return next(t for t in tools if t.major == best)


def choose_pg_dump(tools: Sequence[Tool], server_version_num: int) -> Tool:
    """The newest pg_dump at least as new as the server's major version (pg_dump
    refuses a newer server); BackupFailed naming what was found when none is."""
    major = server_version_num // 10000
    fitting = [t for t in tools if t.major >= major]
    if not fitting:
        raise BackupFailed(
            f"the source server runs PostgreSQL {server_version_text(server_version_num)}; "
            f"found {found_text(tools)}; install PostgreSQL {major} client tools "
            "or set pg_bin_dir"
        )
    return _newest(fitting)


def choose_pg_restore(tools: Sequence[Tool], need: int, prefer: range, why: str) -> Tool:
    """A pg_restore of major version `need` or newer, preferably one in `prefer` (the
    versions that may have written the archive), else the newest. `why` says where
    `need` comes from, for the error: "this backup was written by pg_dump 16"."""
    fitting = [t for t in tools if t.major >= need]
    if not fitting:
        raise BackupFailed(
            f"{why}; found {found_text(tools)}; install PostgreSQL {need} client tools "
            "or set pg_bin_dir"
        )
    return _newest([t for t in fitting if t.major in prefer] or fitting)
