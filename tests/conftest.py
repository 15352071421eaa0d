"""Shared fixtures: a throwaway Postgres per session, a fresh database per test,
and helpers to run the real CLI in subprocesses."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

# BACKUPCTL_TEST_AWS_CALL_LOG=FILE: every CLI a test runs through Setup appends its
# AWS calls there (backupctl/awscalls.py); `python -m tests.deploy.iam FILE` then
# checks them against deploy/aws/iam-policy.json.
AWS_CALL_LOG = os.environ.get("BACKUPCTL_TEST_AWS_CALL_LOG")
RECORD_AWS_CALLS = {"BACKUPCTL_AWS_CALL_LOG": AWS_CALL_LOG} if AWS_CALL_LOG else {}

# The suite must never pick up an operator's real configuration. (BACKUPCTL_TEST_*
# stay, for the test processes xdist starts from this one.)
for _name in list(os.environ):
    if _name.startswith("BACKUPCTL_") and not _name.startswith("BACKUPCTL_TEST_"):
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """S3 and SQS over HTTP: moto in server mode on 127.0.0.1, for the whole session."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class S3:
    """A fresh bucket on the moto server, and a boto3 client to look inside it."""

    endpoint: str
    bucket: str
    client: Any

    @property
    def env(self) -> dict[str, str]:
        return {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def open_uploads(self) -> list[str]:
        found = self.client.list_multipart_uploads(Bucket=self.bucket)
        return [u["Key"] for u in found.get("Uploads", [])]


@pytest.fixture
def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    import boto3

    for name, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_S3": moto_url}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    bucket = f"backups-{os.getpid()}-{next(_counter)}"
    client.create_bucket(Bucket=bucket)
    return S3(moto_url, bucket, client)


@pytest.fixture
def locked_s3(s3: S3) -> S3:
    """A fresh bucket created with Object Lock enabled (and so versioning)."""
    bucket = f"locked-{s3.bucket}"
    s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return S3(s3.endpoint, bucket, s3.client)


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
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []

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
        **RECORD_AWS_CALLS,
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


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[Setup, Any]]:
    """A Setup whose ledger is a Postgres of its own that the test may restart."""
    from bench.servers import RestartablePostgres

    with RestartablePostgres(prefix="backupctl-test-restart-") as pg:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPCTL_")}
        env.update(
            BACKUPCTL_DATABASE_URL=pg.url,
            BACKUPCTL_REGISTRY=str(tmp_path / "apps.toml"),
            BACKUPCTL_STORAGE=(tmp_path / "storage").as_uri(),
            BACKUPCTL_RUN_RETRY_WAIT="0s",
            PYTHONPATH=str(REPO),
            **RECORD_AWS_CALLS,
        )
        yield Setup(pg.url, tmp_path, env), pg


@pytest.fixture(scope="session")
def mariadb() -> Iterator[Any]:
    """A throwaway MariaDB server for this test process (tests/mariadb_server.py);
    skips (fails under CI) when MariaDB is not installed."""
    from tests.mariadb_server import MariaDB

    with MariaDB() as server:
        yield server
