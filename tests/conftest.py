"""Shared fixtures: a throwaway Postgres per session, a fresh database per test,
and helpers to run the real CLI in subprocesses."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

# The suite must never pick up an operator's real configuration.
for _name in list(os.environ):
    if _name.startswith("BACKUPCTL_") and _name != "BACKUPCTL_TEST_DATABASE_URL":
        del os.environ[_name]

REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A Postgres for this session: BACKUPCTL_TEST_DATABASE_URL, or a throwaway pgserver."""
    url = os.environ.get("BACKUPCTL_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="backupctl-test-pg-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()


@pytest.fixture
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"backupctl_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(pg_server_url, dbname=name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Setup:
    """A registry, a storage folder and the environment the CLI runs with."""

    database_url: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def registry(self) -> Path:
        return self.root / "apps.toml"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def write_registry(self, text: str) -> None:
        self.registry.write_text(textwrap.dedent(text))

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the real CLI to completion."""
        return subprocess.run(
            [sys.executable, "-m", "backupctl", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """Start the real CLI in the background."""
        return subprocess.Popen(
            [sys.executable, "-m", "backupctl", *args],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
        )

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def files(self) -> list[str]:
        """Every file in storage (temporary ones included), relative to it."""
        if not self.storage.exists():
            return []
        return sorted(
            p.relative_to(self.storage).as_posix() for p in self.storage.rglob("*") if p.is_file()
        )


@pytest.fixture
def setup(database_url: str, tmp_path: Path) -> Iterator[Setup]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPCTL_")}
    env.update(
        BACKUPCTL_DATABASE_URL=database_url,
        BACKUPCTL_REGISTRY=str(tmp_path / "apps.toml"),
        BACKUPCTL_STORAGE=(tmp_path / "storage").as_uri(),
        BACKUPCTL_RUN_RETRY_WAIT="0s",
        PYTHONPATH=str(REPO),
    )
    s = Setup(database_url, tmp_path, env)
    yield s


def wait_for(predicate: object, timeout: float = 20.0, interval: float = 0.05) -> None:
    """Poll `predicate()` until true; fail the test after `timeout` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def kill_tree(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Signal a CLI process (and leave it reaped)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    if sig in (signal.SIGKILL, signal.SIGTERM):
        proc.communicate(timeout=30)
