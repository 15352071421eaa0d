"""Drill of a mysql backup: restored into a new database `backupctl_drill_<backup id>`
on the drill server ([drill] mysql_url), its tables counted row by row, and always
dropped afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from backupctl.drill import SCRATCH_PREFIX, check_tables, scratch_database
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
    with scratch_database(
        dbname,
        server,
        create=lambda: create_database(client, scratch, dbname, env),
        drop=lambda: drop_database(client, scratch, dbname, env),
    ):
        pipe_into(client, scratch, source.copy_to, env)
        tables = base_tables(client, scratch, env)
        rows = count_rows(client, scratch, tables, env)
    check_tables(restored, manifest, tables, rows)
