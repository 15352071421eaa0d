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
import threading
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


class RestartablePostgres:
    """A Postgres of its own on 127.0.0.1 that a test or the fault suite can stop,
    start and restart with pg_ctl, as a managed database's maintenance would.

    It uses the binaries pgserver ships, or those in `bin_dir` (another major
    version: /usr/lib/postgresql/15/bin on Debian). As root it runs as the
    `pgserver` system user (Postgres refuses root), which pgserver itself creates.
    Use it as a context manager: the server is stopped and its folder removed at
    the end.
    """

    def __init__(self, prefix: str = "backupctl-pg-", bin_dir: str | Path | None = None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = Path(bin_dir or POSTGRES_BIN_PATH)
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.root = Path(self._tmp.name)
        self.pgdata = self.root / "pgdata"
        self.port = free_port()
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres?sslmode=disable"

    def conninfo(self, dbname: str = "postgres", port: int | None = None) -> str:
        """A key=value conninfo for `dbname` (through `port`, e.g. a proxy's)."""
        return f"host={HOST} port={port or self.port} user=postgres dbname={dbname} sslmode=disable"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            check=check,
            capture_output=True,
            text=True,
            timeout=60,
            user=self._user,
            stdin=subprocess.DEVNULL,
        )

    def __enter__(self) -> RestartablePostgres:
        if os.geteuid() == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pgserver.utils import ensure_user_exists

            ensure_user_exists("pgserver")
            self._user = "pgserver"
            import pwd

            entry = pwd.getpwnam("pgserver")
            self.root.chmod(0o755)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            parent = self.root.parent  # the user must traverse the temporary folder
            parent.chmod(parent.stat().st_mode | 0o011)
        try:
            self._run(
                "initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "-E", "utf8"
            )
            self.start()
        except BaseException:
            self._tmp.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "stop", "-m", "immediate", "-w", check=False)
        self._tmp.cleanup()

    def start(self) -> None:
        opts = f"-h {HOST} -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-o", opts, "-l", str(self.root / "log"), "-w",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "stop", "-m", mode, "-w")

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m fast`: every connection is cut, then the server is back."""
        opts = f"-h {HOST} -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-o", opts, "-l", str(self.root / "log"), "-w",
            "-m", mode, "restart",
        )  # fmt: skip


class PgFaultProxy:
    """A TCP proxy in front of a Postgres that can cut a connection on purpose.

    `cut_after(marker)`: the next client message holding `marker` (a piece of SQL) is
    forwarded; the server's answer is swallowed and both sides are closed, as when a
    network dies right after a COMMIT went out. The statement has run; the client
    can't know. One shot: later connections pass untouched.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)  # so the accept loop sees __exit__
        self.port = int(self._listener.getsockname()[1])
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self.cuts = 0
        self._closing = False
        self._thread = threading.Thread(target=self._accept, name="pg-fault-proxy", daemon=True)

    def __enter__(self) -> PgFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self._thread.join(timeout=5)
        self._listener.close()

    def cut_after(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def _take_marker(self, data: bytes) -> bool:
        with self._lock:
            if self._marker is not None and self._marker in data:
                self._marker = None
                self.cuts += 1
                return True
        return False

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            cut = threading.Event()
            for src, dst, watch in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, watch, cut, client, server), daemon=True
                ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        watch: bool,
        cut: threading.Event,
        client: socket.socket,
        server: socket.socket,
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or cut.is_set():
                    break
                if watch and self._take_marker(data):
                    cut.set()  # the other pump drops the answer, from now on
                    dst.sendall(data)
                    time.sleep(0.5)  # the server runs (and commits) the statement
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
