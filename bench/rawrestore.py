"""The raw restore that ``bench/drill.py`` and ``bench/restore.py`` measure backupctl
against: ``CREATE DATABASE``, then ``zstd -dc ARTIFACT | pg_restore`` into it; and the
server's state between variants (``settle``) and the drop of a database afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from backupctl.kinds.postgres import libpq_env, pg_restore_argv, split_password
from bench.backupctl_cli import clean_env
from bench.measure import run_piped


def settle(url: str) -> None:
    """Dirty pages to disk and a checkpoint: the next variant starts from the same state."""
    os.sync()
    with (
        psycopg.connect(url, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


def drop(url: str, name: str) -> None:
    """Drop the database `name` if it exists, its connections and all."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def restore_raw(
    url: str, name: str, pg_restore: str, zstd: str, artifact: Path, **options: bool
) -> tuple[float, dict[str, float], float]:
    """``CREATE DATABASE name``, then ``zstd -dc ARTIFACT | pg_restore`` into it with the
    argv of ``pg_restore_argv`` (`options`: its keyword options). Returns the seconds from
    before the CREATE to pg_restore's exit, the peak RSS in MB of zstd and pg_restore,
    and their CPU seconds; RuntimeError with the end of their stderr if either fails.
    The caller drops the database."""
    conninfo, password = split_password(make_conninfo(url, dbname=name))
    argv = pg_restore_argv(pg_restore, conninfo, False, **options)
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        piped = run_piped(
            started,
            lambda: subprocess.Popen([zstd, "-dc", "-q", str(artifact)], stdout=subprocess.PIPE),
            lambda unpacked: subprocess.Popen(
                argv,
                stdin=unpacked,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=libpq_env(password, clean_env()),
            ),
            ("zstd", "pg_restore"),
        )
        zstd_code, restore_code = piped.codes
        if zstd_code != 0 or restore_code != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(
                f"raw restore failed: zstd exit {zstd_code}, pg_restore {restore_code}:\n{tail}"
            )
    return piped.seconds, piped.rss, piped.cpu_seconds
