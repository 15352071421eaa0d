"""The servers the benchmarks run against: Postgres (given, or a throwaway one) and moto.

Shared by ``bench/plan.py``, ``bench/backup.py`` and ``bench/enqueue.py``. Each server is
a context manager that stops and removes what it started when its block ends: normally,
on an error, and on Ctrl-C (``KeyboardInterrupt``; the benchmarks turn SIGTERM into one
too).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

ENV_URL = "BACKUPCTL_BENCH_DATABASE_URL"
HOST = "127.0.0.1"
MOTO_START_SECONDS = 30.0
STOP_SECONDS = 10.0


@contextlib.contextmanager
def database_url(prefix: str) -> Iterator[str]:
    """Yield the URL of the Postgres to use: $BACKUPCTL_BENCH_DATABASE_URL if it is set
    (left as it is at the end), else that of a ``throwaway_postgres(prefix)``."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    with throwaway_postgres(prefix) as url:
        yield url


@contextlib.contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """Start a Postgres with pgserver in a new temporary directory (its name starts with
    `prefix`) and yield its URL; at the end stop it and delete the directory.

    pgserver's warnings (it warns when XDG_RUNTIME_DIR is unset) are silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start moto's server (``python -m moto.server``) on a free port of 127.0.0.1, wait
    until it accepts connections, and yield its endpoint URL; stop it at the end.

    `env` is added to this process's environment for the server (moto's own settings).
    The server runs in its own session, so a Ctrl-C in the terminal reaches only the
    benchmark, whose cleanup then stops the server, and not the server while the
    benchmark still needs it. Its output is discarded. Raises RuntimeError if it exits,
    or does not accept connections within MOTO_START_SECONDS.
    """
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=None if env is None else {**os.environ, **env},
    )
    try:
        wait_listening(proc, port, " ".join(argv))
        yield f"http://{HOST}:{port}"
    finally:
        stop(proc)


def wait_listening(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    """Return once `proc` accepts connections on `port`; RuntimeError if it exits first
    or MOTO_START_SECONDS pass."""
    deadline = time.monotonic() + MOTO_START_SECONDS
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"the moto server did not start: `{what}` exited with code {code}"
                    " (is moto installed with its server extra? pip install 'moto[server]')"
                ) from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the moto server did not start: `{what}` was not accepting connections"
                    f" on {HOST}:{port} after {MOTO_START_SECONDS:g}s"
                ) from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate `proc` unless it has exited (kill it if it is still there after
    STOP_SECONDS), and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_SECONDS)
