"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

MakeDb = Callable[..., str]


@pytest.fixture
def make_db() -> Iterator[MakeDb]:
    """make_db(server_url, create=True): a database of its own on that server (or just
    its name, for a restore to create), dropped at the end."""
    made: list[tuple[str, str]] = []

    def make(server: str, create: bool = True) -> str:
        name = f"Db-{os.getpid()}-{len(made)}-{time.monotonic_ns() % 10**9}"
        made.append((server, name))
        if create:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        return make_conninfo(server, dbname=name)

    yield make
    for server, name in made:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
