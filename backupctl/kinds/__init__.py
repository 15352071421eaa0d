"""Backup kinds: one module each, owning everything about its kind of app.

A kind (the Kind protocol below) validates its registry fields, writes an app's
data to a stream (its dump and what the dump holds: the manifest), restores that
data into a target and drills it (restores it into a scratch target and checks it
against the manifest). The generic flows around them (backupctl.executor and
pipeline for a backup, backupctl.restore for a restore, backupctl.drill for a
drill) dispatch through KINDS, the one table of kinds.

Adding a kind is one new module here with a class that follows Kind, plus one line
in KINDS. The table names modules as text, imported only when a kind is used:
the command line must start fast (bench/startup.py).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from backupctl.cancel import CancelToken

if TYPE_CHECKING:
    from backupctl.drill import DrillTargets
    from backupctl.kinds.fields import KindSpec
    from backupctl.manifest import Manifest
    from backupctl.registry.model import App
    from backupctl.restore import RestoreRequest, Source

# Kind name (the registry's `kind`) -> "module:class" of its implementation.
KINDS: dict[str, str] = {
    "command": "backupctl.kinds.command:CommandKind",
    "files": "backupctl.kinds.files:FilesKind",
    "postgres": "backupctl.kinds.postgres:PostgresKind",
    "mysql": "backupctl.kinds.mysql:MysqlKind",
    "sqlite": "backupctl.kinds.sqlite:SqliteKind",
}


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
    """What a kind learned while writing a dump, recorded with the backup."""

    # Which program wrote it ("pg_dump 16.2"): what a restore needs to read it back.
    written_by: str | None = None
    # The kind's part of the manifest (JSON values, e.g. {"files": 3, "file_bytes":
    # 120}): what the dump holds, which the kind's drill compares a restore with.
    # The pipeline adds the uncompressed size itself.
    manifest: Mapping[str, Any] = field(default_factory=dict)
    # Set when the data was empty, saying what was ("the command wrote no output"):
    # the backup fails unless the app has allow_empty = true.
    empty: str | None = None


class Dumper(Protocol):
    extension: str

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Write the app's data to `out`; raise BackupFailed on failure. Returns what
        it learned: which program wrote it, what the dump holds, whether it is empty."""


@dataclass(frozen=True)
class KindOptions:
    """Settings the kinds take from the configuration and the registry."""

    pg_bin_dir: str | None = None
    pg_embedded: bool = True  # the embedded Postgres's pg_dump/pg_restore as candidates
    hidden_env: frozenset[str] = frozenset()  # every app's secret variable (dsn_env)


class Kind(Dumper, Protocol):
    """One kind of app. Its class is built with the KindOptions in effect; every
    method is told the app (or the artifact) it works on.

    `extension` names its artifacts (<name>.<extension>.zst; unique among the
    kinds: a restore finds the kind by it), `fields` the registry fields it takes.
    `one_pass`: its restore undoes what it wrote when the source's reader fails
    (a transaction rolled back, a temporary folder removed) and makes it final only
    after that reader's clean end, so the artifact is read once, checked as it
    streams; otherwise it is read whole and checked before the restore starts."""

    fields: KindSpec
    one_pass: bool

    def __init__(self, options: KindOptions | None = None) -> None: ...

    def secrets(self, app: App) -> list[str]:
        """Values that must never appear in output about this app."""

    def preflight(self, app: App) -> list[str]:
        """What would make a backup of `app` fail if it ran now (a missing folder, a
        program not found), one line each, starting with the field it is about: for
        `config check`, which reports it (exit 1) without failing the configuration,
        since a mount or a package may still appear. backupctl.kinds.preflight has
        the checks of paths and programs."""

    def restore(self, source: Source, target: str, request: RestoreRequest) -> str:
        """Restore the data of `source` (read it through `source.reader()`, whose
        clean end checks the stored bytes' sha256; verified before already unless
        the kind is `one_pass`)
        into `target` (the --to value: a DSN, a folder, a file...); return one
        line saying what was done. UsageError (exit 2) for a target that must not
        be touched, RestoreFailed (exit 1) for a restore that failed; either way
        the target is left as it was, as far as the kind can."""

    def drill(
        self,
        source: Source,
        app: App,
        manifest: Manifest | None,
        targets: DrillTargets,
        restored: dict[str, Any],
    ) -> None:
        """Restore `source` into a scratch target (removed afterwards, whatever
        happens), put what came back into `restored` (shown and recorded, e.g.
        {"tables": 3, "rows": 1200}) and compare it with `manifest` (None: the
        backup has none; say so with backupctl.drill.note_no_manifest). Raise
        DrillMismatch when it differs, BackupFailed/BackupctlError when the restore
        fails."""


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


def kind_class(name: str) -> type[Kind]:
    """The class of kind `name` (imported now); ValueError for an unknown kind."""
    where = KINDS.get(name)
    if where is None:
        raise ValueError(f"unknown kind {name!r}")
    module, _, attribute = where.partition(":")
    return cast("type[Kind]", getattr(importlib.import_module(module), attribute))


def kind_named(name: str, options: KindOptions | None = None) -> Kind:
    """The kind `name`, built with `options`."""
    return kind_class(name)(options or KindOptions())


def kind_for(app: App, options: KindOptions | None = None) -> Kind:
    """Return the backup kind that handles `app`."""
    return kind_named(app.kind, options)


def kind_of_artifact(uri: str) -> str:
    """The kind that wrote an artifact, from its name (<name>.<ext>.zst)."""
    name = uri.rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1] == "zst":
        for kind in KINDS:
            if kind_class(kind).extension == parts[-2]:
                return kind
    raise ValueError(f"not a backupctl artifact name: {name}")
