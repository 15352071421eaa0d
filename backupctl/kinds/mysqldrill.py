"""Drill of a mysql backup: restored into a new database `backupctl_drill_<backup id>`
on the drill server ([drill] mysql_url), its tables counted row by row, and always
dropped afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from backupctl.drill import SCRATCH_PREFIX, DrillMismatch, DrillStopped, note_no_manifest
from backupctl.errors import BackupFailed
from backupctl.kinds.mysql import pipe_into
from backupctl.kinds.mysqlclient import (
    CLIENT_PROGRAMS,
    base_tables,
    count_rows,
    create_database,
    drop_database,
    find_program,
    parse_dsn,
)
from backupctl.redact import redact_url
from backupctl.wording import short_list

if TYPE_CHECKING:
    from backupctl.manifest import Manifest
    from backupctl.restore import Source


def drill_database(
    source: Source,
    server: str,
    manifest: Manifest | None,
    restored: dict[str, Any],
    env: Mapping[str, str],
) -> None:
    """Restore `source` into a scratch database on `server` (a mysql:// URL; its
    database, if any, is not used), count its tables and rows into `restored`, drop
    it, and compare the tables with the manifest's. The clients run in `env`."""
    try:
        base = parse_dsn(server, database_required=False)
    except ValueError as exc:
        raise BackupFailed(f"[drill] mysql_url {exc}") from None
    dbname = f"{SCRATCH_PREFIX}{source.artifact.backup_id}"
    scratch = base.with_database(dbname)
    client = find_program(CLIENT_PROGRAMS, env)
    # A database of this name is a drill's that was killed (SIGKILL) before its
    # clean-up: nobody else names databases so.
    drop_database(client, scratch, dbname, env)
    try:  # entered before the database exists: a signal right after CREATE still drops it
        if not create_database(client, scratch, dbname, env):
            raise BackupFailed(f"database {dbname} exists already: another drill of this backup?")
        pipe_into(client, scratch, source.copy_to, env)
        tables = base_tables(client, scratch, env)
        rows = count_rows(client, scratch, tables, env)
    finally:
        try:
            try:
                drop_database(client, scratch, dbname, env)
            except DrillStopped:
                drop_database(client, scratch, dbname, env)  # it landed mid-drop; raised once
                raise
        except BackupFailed as exc:
            raise BackupFailed(f"{exc} (on {redact_url(server)}): drop it by hand") from None
    restored["tables"] = len(tables)
    restored["rows"] = rows
    names = manifest.fields.get("table_names") if manifest is not None else None
    if names is None:
        note_no_manifest(restored, "tables")
        return
    missing = sorted(set(names) - set(tables))
    if missing:
        raise DrillMismatch(
            f"{len(missing)} of the backup's {len(names)} tables are missing "
            f"after the restore ({short_list(missing)})"
        )
