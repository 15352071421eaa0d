"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.conftest import Setup

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


def terminate_mid_drill(setup: Setup, app_id: str, scratch: Callable[[], list[str]]) -> None:
    """SIGTERM `backupctl drill --app APP_ID` once its scratch database exists (as
    `scratch()` lists them), then check what a stopped drill must leave: exit 1
    saying why, no scratch database, and a failed drill row naming the signal."""
    stopped = False
    for _ in range(3):  # the signal must land mid-drill; a drill that outran us retries
        proc = setup.start("drill", "--app", app_id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if scratch():
                proc.send_signal(signal.SIGTERM)
                stopped = True
                break
            time.sleep(0.01)
        _out, err = proc.communicate(timeout=120)
        if stopped:
            assert proc.returncode == 1, err
            assert "drill stopped (received SIGTERM)" in err
            break
    assert stopped, "the drill never got to its scratch database"
    assert scratch() == []
    rows = setup.query("SELECT status, error FROM backupctl.drills ORDER BY id DESC LIMIT 1")
    assert rows[0][0] == "failed" and "SIGTERM" in str(rows[0][1])
