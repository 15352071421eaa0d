"""Kind `postgres`: pg_dump --format=custom, streamed, by a pg_dump that fits the
server's version (recorded with the backup); the password never in argv. Restored
with pg_restore (pgrestore.py), drilled in a scratch database (pgdrill.py).

Manifest: `tables` (a count) and `table_names` ("schema.table"), read from the
archive's table of contents as it streams past (pgtoc.py)."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import DumpResult, KindOptions, Writer, child_environment
from backupctl.kinds.fields import KindSpec, app_dsn, env_name, nonempty_str, path
from backupctl.kinds.pgconnect import Unreachable, server_version_num
from backupctl.kinds.pgtoc import TocTee
from backupctl.kinds.pgtools import (
    PgTools,
    Tool,
    choose_pg_dump,
    server_version_text,
)
from backupctl.kinds.pgtools import embedded_bin_dir as embedded_bin_dir  # re-exported
from backupctl.kinds.process import stream_stdout
from backupctl.redact import redact_text

if TYPE_CHECKING:
    from backupctl.drill import DrillTargets
    from backupctl.manifest import Manifest
    from backupctl.registry.model import App
    from backupctl.restore import RestoreRequest, Source

log = logging.getLogger(__name__)


def _dsn(value: Any) -> str:
    text = nonempty_str(value)
    from psycopg import conninfo

    try:
        conninfo.conninfo_to_dict(text)
    except Exception:  # its message may quote the string, password and all
        raise ValueError(
            "is not a valid PostgreSQL connection string "
            "(postgresql://user@host/db or host=... dbname=...)"
        ) from None
    return text


def split_password(dsn: str) -> tuple[str, str | None]:
    """Split a DSN (URL or key=value) into a conninfo without the password, and the password."""
    from psycopg import conninfo

    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError; its text may echo the DSN
        raise BackupFailed(f"invalid DSN: {redact_text(str(exc), [dsn])}") from None
    password = params.pop("password", None)
    if "sslpassword" in params:  # libpq has no environment variable for it: never in argv
        raise BackupFailed(
            "sslpassword in a DSN is not supported: use an unencrypted key file "
            "readable only by this user, or a passfile"
        )
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), (
        str(password) if password is not None else None
    )


def libpq_env(password: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for pg_dump/pg_restore: the password only in PGPASSWORD
    (`base`: the child environment, default ours without backupctl's settings)."""
    env = dict(child_environment() if base is None else base)
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return env


def pg_dump_argv(pg_dump: str, conninfo: str) -> list[str]:
    """pg_dump's argv: custom format, uncompressed (zstd follows), never a password prompt."""
    return [pg_dump, "--format=custom", "--compress=0", "--no-password", f"--dbname={conninfo}"]


def pg_restore_argv(
    pg_restore: str,
    conninfo: str,
    clean: bool,
    *,
    no_owner: bool = False,
    no_privileges: bool = False,
) -> list[str]:
    """pg_restore's argv: one transaction, so a failed or refused restore leaves nothing.
    `no_owner`/`no_privileges`: pg_restore's own, for a server without the app's roles."""
    argv = [pg_restore, "--no-password", "--single-transaction", "--exit-on-error"]
    if clean:
        argv += ["--clean", "--if-exists"]
    if no_owner:
        argv.append("--no-owner")
    if no_privileges:
        argv.append("--no-privileges")
    return [*argv, f"--dbname={conninfo}"]


class PostgresKind:
    extension = "pgdump"
    one_pass = True  # pg_restore --single-transaction: killed, it rolls back
    fields = KindSpec(
        {"dsn": _dsn, "dsn_env": env_name, "pg_bin_dir": path},
        paths=frozenset({"pg_bin_dir"}),
        one_of=(frozenset({"dsn", "dsn_env"}),),
    )

    def __init__(self, options: KindOptions | None = None) -> None:
        self._options = options or KindOptions()

    def tools(self, app: App | None = None) -> PgTools:
        """Where pg_dump/pg_restore are looked for: the app's pg_bin_dir, else the
        global one; then PATH, then the embedded Postgres's (unless turned off)."""
        own = app.params.get("pg_bin_dir") if app is not None else None
        return PgTools(own or self._options.pg_bin_dir, self._options.pg_embedded)

    def choose_pg_dump(self, app: App, conninfo: str, password: str | None) -> tuple[Tool, int]:
        """The pg_dump for this source, by its server's major version (and that version)."""
        tools = self.tools(app).find("pg_dump")  # a missing program is said before connecting
        try:
            version = server_version_num(conninfo, password)
        except Unreachable as exc:
            raise BackupFailed(f"cannot connect to the source database: {exc}") from None
        return choose_pg_dump(tools, version), version

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Stream pg_dump's custom-format archive of the app's database to `out`;
        return which pg_dump wrote it ("pg_dump 16.2") and the tables of its TOC
        (read as the archive streams past), to be recorded with it."""
        conninfo, password = split_password(app_dsn(app))
        tool, version = self.choose_pg_dump(app, conninfo, password)
        log.info(
            "app %s: the source server runs PostgreSQL %s; using pg_dump %s (%s)",
            app.id,
            server_version_text(version),
            tool.version,
            tool.folder,
        )
        argv = pg_dump_argv(tool.path, conninfo)
        shown = ("PGPASSWORD=*** " if password is not None else "") + shlex.join(argv)
        log.debug("app %s: running %s", app.id, shown)
        env = libpq_env(password, child_environment(self._options.hidden_env))
        toc = TocTee(out)
        stream_stdout(argv, toc, cancel, env=env, label="pg_dump")
        tables = toc.finish()
        if tables is None:  # a manifest without tables; never a failed backup
            log.warning("app %s: the tables of the archive are unknown: %s", app.id, toc.problem)
        empty = "the database has no tables" if tables == () else None
        manifest = {} if tables is None else {"tables": len(tables), "table_names": list(tables)}
        return DumpResult(written_by=tool.recorded(), manifest=manifest, empty=empty)

    def preflight(self, app: App) -> list[str]:
        try:
            conninfo, password = split_password(app_dsn(app))
        except BackupFailed as exc:
            problems = [str(exc)]
            try:
                self.tools(app).find("pg_dump")
            except BackupFailed as missing:
                problems.insert(0, str(missing))
            return problems
        try:
            self.choose_pg_dump(app, conninfo, password)
        except BackupFailed as exc:
            return [str(exc)]
        return []

    def secrets(self, app: App) -> list[str]:
        try:
            dsn = app_dsn(app)
        except BackupFailed:
            return []
        try:
            _, password = split_password(dsn)
        except BackupFailed:
            return [dsn]
        return [dsn] + ([password] if password else [])

    def restore(self, source: Source, target: str, request: RestoreRequest) -> str:
        """pg_restore --single-transaction into the database `target` (a DSN), with a
        pg_restore that reads the archive; a missing database is created (unless not
        `request.create`), a non-empty one refused unless `request.clean`."""
        from backupctl.kinds.pgrestore import restore_database

        return restore_database(source, target, request, self.tools())

    def drill(
        self,
        source: Source,
        app: App,
        manifest: Manifest | None,
        targets: DrillTargets,
        restored: dict[str, Any],
    ) -> None:
        """Restore into a scratch database on [drill] postgres_url, count its tables
        and rows; every table of the manifest must be there."""
        from backupctl.kinds.pgdrill import drill_database

        drill_database(source, targets.server_url("postgres"), manifest, self.tools(), restored)
