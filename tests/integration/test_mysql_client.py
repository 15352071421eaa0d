"""backupctl's MySQL plumbing against a real MariaDB server (tests/mariadb_server.py):
the option file carries any password, and the client's own queries."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from backupctl.kinds.mysqlclient import (
    CLIENT_PROGRAMS,
    ClientError,
    base_tables,
    count_rows,
    create_database,
    database_state,
    drop_database,
    find_program,
    parse_dsn,
    server_version,
)
from bench.servers import free_port
from tests.mariadb_server import MariaDB, identifier, sql_literal

_names = itertools.count()
ENV = dict(os.environ)


@pytest.fixture
def client(mariadb: MariaDB) -> str:
    return find_program(CLIENT_PROGRAMS, ENV)


@pytest.fixture
def user(mariadb: MariaDB) -> Iterator[str]:
    """A user of its own (any host), dropped at the end."""
    name = f"u{os.getpid()}_{next(_names)}"
    yield name
    mariadb.sql(f"DROP USER IF EXISTS {sql_literal(name)}@'%'")


@pytest.fixture
def database(mariadb: MariaDB) -> Iterator[str]:
    name = f"it_{os.getpid()}_{next(_names)}"
    mariadb.sql(f"CREATE DATABASE {identifier(name)}")
    yield name
    mariadb.sql(f"DROP DATABASE IF EXISTS {identifier(name)}")


@pytest.mark.parametrize(
    "password",
    ["p#w \"q\\x's%@", " lead and trail ", "end\\", '"', "'", "a\nb\tc", "#", "é日本", "\\n"],
)
def test_any_password_logs_in_through_the_option_file(
    mariadb: MariaDB, client: str, user: str, database: str, password: str
) -> None:
    mariadb.sql(
        f"CREATE USER {sql_literal(user)}@'%' IDENTIFIED BY {sql_literal(password)};"
        f" GRANT ALL ON {identifier(database)}.* TO {sql_literal(user)}@'%'"
    )
    dsn = parse_dsn(mariadb.url(database, user, password))
    assert dsn.password == password
    assert "MariaDB" in server_version(client, dsn, ENV)
    wrong = parse_dsn(mariadb.url(database, user, password + "x"))
    with pytest.raises(ClientError) as refused:
        server_version(client, wrong, ENV)
    assert refused.value.code == 1045 and "(with a password)" in str(refused.value)


def test_a_database_is_created_inspected_counted_and_dropped(mariadb: MariaDB, client: str) -> None:
    dsn = parse_dsn(mariadb.url(f"we`ird {os.getpid()}"))
    assert not database_state(client, dsn, ENV).exists
    assert create_database(client, dsn, dsn.database, ENV)
    assert not create_database(client, dsn, dsn.database, ENV)  # there already
    try:
        assert database_state(client, dsn, ENV).empty
        mariadb.sql(
            "CREATE TABLE `a``b` (id INT); INSERT INTO `a``b` VALUES (1), (2), (3);"
            " CREATE TABLE c (id INT); INSERT INTO c VALUES (4);"
            " CREATE VIEW v AS SELECT * FROM c; CREATE SEQUENCE s;"
            " CREATE PROCEDURE p() SELECT 1; CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1",
            database=dsn.database,
        )
        state = database_state(client, dsn, ENV)
        assert (state.exists, state.tables, state.routines, state.events) == (True, 4, 1, 1)
        assert not state.empty
        tables = base_tables(client, dsn, ENV)
        assert tables == ["a`b", "c"]  # neither the view nor the sequence
        assert count_rows(client, dsn, tables, ENV) == 4
    finally:
        drop_database(client, dsn, dsn.database, ENV)
    assert not database_state(client, dsn, ENV).exists


def test_a_server_that_is_not_there_is_unreachable_and_a_missing_database_is_not(
    mariadb: MariaDB, client: str
) -> None:
    nowhere = parse_dsn(f"mysql://root@127.0.0.1:{free_port()}/shop")
    with pytest.raises(ClientError) as away:
        server_version(client, nowhere, ENV)
    assert away.value.unreachable and "Can't connect" in str(away.value)
    missing = parse_dsn(mariadb.url("no_such_db"))
    with pytest.raises(ClientError) as unknown:
        server_version(client, missing, ENV)
    assert unknown.value.code == 1049 and not unknown.value.unreachable
