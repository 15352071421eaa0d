"""Backup kinds: each writes one app's data to a binary stream."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from backupctl.cancel import CancelToken
from backupctl.registry.model import App


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Counting:
    """A writer that counts the bytes passing through to `inner`."""

    def __init__(self, inner: Writer) -> None:
        self._inner = inner
        self.count = 0

    def write(self, data: bytes, /) -> int:
        self._inner.write(data)
        self.count += len(data)
        return len(data)


@dataclass(frozen=True)
class DumpResult:
    """What a kind learned while writing a dump, recorded with the backup (its
    manifest, with the uncompressed size the pipeline counts)."""

    # Which program wrote it ("pg_dump 16.2"): what a restore needs to read it back.
    written_by: str | None = None
    files: int | None = None  # files: regular files written
    file_bytes: int | None = None  # files: their total size
    tables: tuple[str, ...] | None = None  # postgres: the TOC's tables; None: unknown
    # Set when the data was empty, saying what was ("the command wrote no output"):
    # the backup fails unless the app has allow_empty = true.
    empty: str | None = None


class Dumper(Protocol):
    extension: str

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Write the app's data to `out`; raise BackupFailed on failure. Returns what
        it learned: which program wrote it, what the dump holds, whether it is empty."""


class Kind(Dumper, Protocol):
    def secrets(self, app: App) -> list[str]:
        """Values that must never appear in output about this app."""

    def preflight(self, app: App) -> list[str]:
        """What would make a backup of `app` fail if it ran now (a missing folder, a
        program not found), one line each, starting with the field it is about: for
        `config check`, which reports it (exit 1) without failing the configuration,
        since a mount or a package may still appear. backupctl.kinds.preflight has
        the checks of paths and programs."""


@dataclass(frozen=True)
class KindOptions:
    """Settings the kinds take from the configuration and the registry."""

    pg_bin_dir: str | None = None
    pg_embedded: bool = True  # the embedded Postgres's pg_dump/pg_restore as candidates
    hidden_env: frozenset[str] = frozenset()  # every app's secret variable (dsn_env)


def child_environment(
    hidden: Iterable[str] = (), base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a backup's program runs with: ours, minus backupctl's own
    settings (BACKUPCTL_*, the ledger's URL among them), PGPASSWORD (libpq's, maybe
    the ledger's) and every app's secret variable, so one app's program never sees
    another's database password."""
    hidden = {*hidden, "PGPASSWORD"}
    return {
        name: value
        for name, value in (os.environ if base is None else base).items()
        if not name.startswith("BACKUPCTL_") and name not in hidden
    }


def kind_for(app: App, options: KindOptions | None = None) -> Kind:
    """Return the backup kind that handles `app`."""
    options = options or KindOptions()
    if app.kind == "files":
        from backupctl.kinds.files import FilesKind

        return FilesKind()
    if app.kind == "command":
        from backupctl.kinds.command import CommandKind

        return CommandKind(options.hidden_env)
    if app.kind == "postgres":
        from backupctl.kinds.postgres import PostgresKind

        return PostgresKind(
            app.params.get("pg_bin_dir") or options.pg_bin_dir,
            options.hidden_env,
            embedded=options.pg_embedded,
        )
    raise ValueError(f"unknown kind {app.kind!r}")


KIND_BY_EXTENSION = {"tar": "files", "out": "command", "pgdump": "postgres"}


def kind_of_artifact(uri: str) -> str:
    """The kind that wrote an artifact, from its name (<name>.<ext>.zst)."""
    name = uri.rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1] == "zst" and parts[-2] in KIND_BY_EXTENSION:
        return KIND_BY_EXTENSION[parts[-2]]
    raise ValueError(f"not a backupctl artifact name: {name}")
