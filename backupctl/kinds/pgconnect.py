"""Connections backupctl itself makes to an app's Postgres (never the ledger's):
to learn the server's version before a dump, and to check or create a restore's
target database.

The password is passed explicitly, never through argv, and an empty one when the
DSN has none: libpq must not fall back to PGPASSWORD in our environment (maybe the
ledger's), which pg_dump and pg_restore never see either. A password file
(~/.pgpass) still works, as it does for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from backupctl.errors import BackupFailed
from backupctl.redact import redact_text

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT = 10
MAINTENANCE_DB = "postgres"


class Unreachable(BackupFailed):
    """The database could not be connected to (the message is redacted)."""


@contextmanager
def connect(
    conninfo: str, password: str | None, dbname: str | None = None
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to `conninfo` (or to database `dbname` on the same
    server, with the same credentials); Unreachable if it cannot be made."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    if dbname is not None:
        conninfo = make_conninfo(conninfo, dbname=dbname)
    try:
        conn = psycopg.connect(
            conninfo, password=password or "", connect_timeout=CONNECT_TIMEOUT, autocommit=True
        )
    except psycopg.Error as exc:
        raise Unreachable(redact_text(str(exc), [password or ""])) from None
    with conn:
        yield conn


def server_version_num(conninfo: str, password: str | None) -> int:
    """The server's version as a number (160002 for 16.2), from the app's DSN."""
    import psycopg

    with connect(conninfo, password) as conn:
        try:
            row = conn.execute("SHOW server_version_num").fetchone()
        except psycopg.Error as exc:
            raise BackupFailed(
                f"cannot read the source server's version: {redact_text(str(exc))}"
            ) from None
    assert row is not None
    return int(str(row[0]))


def database_exists(conninfo: str, password: str | None, dbname: str) -> bool:
    """Whether the server has database `dbname`, asked through its maintenance
    database; Unreachable when that cannot be connected to either."""
    with connect(conninfo, password, MAINTENANCE_DB) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
    return found is not None


def create_database(conninfo: str, password: str | None, dbname: str) -> bool:
    """CREATE DATABASE `dbname` (a quoted identifier) through the maintenance
    database. False if it exists already (someone was quicker)."""
    import psycopg
    from psycopg import sql

    with connect(conninfo, password, MAINTENANCE_DB) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.errors.DuplicateDatabase:
            return False
        except psycopg.Error as exc:
            raise BackupFailed(
                f"cannot create database {dbname}: {redact_text(str(exc))}"
            ) from None
    return True


def drop_database(conninfo: str, password: str | None, dbname: str) -> None:
    """DROP DATABASE `dbname`: one this restore created, whose restore failed."""
    import psycopg
    from psycopg import sql

    with connect(conninfo, password, MAINTENANCE_DB) as conn:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        except psycopg.Error as exc:
            raise BackupFailed(f"cannot drop database {dbname}: {redact_text(str(exc))}") from None


def is_empty(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether the connected database holds no relation outside the system schemas."""
    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_toast%%' AND c.relkind IN ('r','p','v','m','S','f')"
    ).fetchone()
    return row is not None and row[0] == 0
