"""Drill of a postgres backup: restored into a new database `backupctl_drill_<backup
id>` on the drill server, without the app's owners and privileges (a scratch server
has none of its roles), counted, and always dropped afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backupctl.drill import SCRATCH_PREFIX, check_tables, scratch_database
from backupctl.errors import BackupFailed
from backupctl.kinds.pgconnect import MAINTENANCE_DB, connect, create_database
from backupctl.kinds.pgrestore import restore_database
from backupctl.kinds.pgtools import PgTools
from backupctl.kinds.postgres import split_password
from backupctl.redact import redact_text
from backupctl.restore import Owners, RestoreRequest, Source

if TYPE_CHECKING:
    from backupctl.manifest import Manifest


def drill_database(
    source: Source,
    server: str,
    manifest: Manifest | None,
    tools: PgTools,
    restored: dict[str, Any],
) -> None:
    """Restore `source` into a scratch database on `server`, count its tables and
    rows into `restored`, drop it, and compare the tables with the manifest's."""
    from psycopg.conninfo import make_conninfo

    conninfo, password = split_password(server)
    dbname = f"{SCRATCH_PREFIX}{source.artifact.backup_id}"
    with scratch_database(
        dbname,
        server,
        create=lambda: create_database(conninfo, password, dbname),
        drop=lambda: _drop_scratch(conninfo, password, dbname),
    ):
        restore_database(
            source,
            make_conninfo(server, dbname=dbname),
            RestoreRequest(create=False, owners=Owners(no_owner=True, no_privileges=True)),
            tools,
        )
        with connect(conninfo, password, dbname) as conn:
            tables, rows = _count_rows(conn)
    check_tables(restored, manifest, tables, rows)


def _drop_scratch(conninfo: str, password: str | None, dbname: str) -> None:
    """DROP DATABASE ... WITH (FORCE): a pg_restore just killed may still be connected."""
    import psycopg
    from psycopg import sql

    with connect(conninfo, password, MAINTENANCE_DB) as conn:
        try:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        except psycopg.Error as exc:
            raise BackupFailed(f"cannot drop database {dbname}: {redact_text(str(exc))}") from None


def _count_rows(conn: Any) -> tuple[list[str], int]:
    """The restored tables ("schema.name") and the exact count of their rows."""
    from psycopg import sql

    found = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_toast%%' ORDER BY 1, 2"
    ).fetchall()
    rows = 0
    for schema, name, relkind in found:
        if relkind == "p":  # a partitioned table holds no rows: its partitions do
            continue
        counted = conn.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
        ).fetchone()
        rows += int(counted[0])
    return [f"{schema}.{name}" for schema, name, _ in found], rows
