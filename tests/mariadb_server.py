"""A throwaway MariaDB server for the tests: its own data folder, socket and port in a
temporary folder, never the machine's own server (its configuration files are not
read: --no-defaults).

The tests talk to it with the `mariadb` client, as root over its socket; backupctl
reaches it over TCP on 127.0.0.1 with the users the tests create.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

from bench.servers import free_port
from tests.tools import missing

HOST = "127.0.0.1"
START_SECONDS = 60.0
STOP_SECONDS = 30.0
INSTALL = "mariadb-server and mariadb-client (apt-get install mariadb-server mariadb-client)"
# Where Debian and others put the server, which is not on a normal user's PATH.
SERVER_FOLDERS = ("/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/libexec")


def find_server() -> str | None:
    """The mariadbd program: on PATH, else in the folders servers are installed in."""
    return shutil.which("mariadbd") or shutil.which(
        "mariadbd", path=os.pathsep.join(SERVER_FOLDERS)
    )


def need_mariadb() -> tuple[str, str, str]:
    """mariadbd, mariadb-install-db and the mariadb client, or skip/fail naming the
    packages (tests.tools.missing)."""
    server = find_server()
    install_db = shutil.which("mariadb-install-db") or shutil.which(
        "mariadb-install-db", path=os.pathsep.join(SERVER_FOLDERS)
    )
    client = shutil.which("mariadb")
    if server is None or install_db is None or client is None:
        absent = [
            name
            for name, found in (
                ("mariadbd", server),
                ("mariadb-install-db", install_db),
                ("mariadb", client),
            )
            if found is None
        ]
        missing(f"MariaDB ({', '.join(absent)})", INSTALL)
        raise AssertionError("unreachable")  # pytest.skip/fail raise
    return server, install_db, client


def _parent_death_signal() -> Callable[[], None] | None:
    """For the server's child process: a function that has it get SIGTERM when the
    test process dies, even by SIGKILL, so no server outlives the suite (Linux only).
    Looked up before the fork: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_it() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_it


def sql_literal(value: str) -> str:
    """`value` as a quoted SQL string literal (for the test's own statements)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(name: str) -> str:
    """`name` as a quoted identifier."""
    return "`" + name.replace("`", "``") + "`"


def _unescape(field: str) -> str | None:
    # The client's batch output escapes \ tab newline NUL; NULL is the word NULL.
    if field == "NULL":
        return None
    out = []
    chars = iter(field)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append({"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}.get(nxt, "\\" + nxt))
        else:
            out.append(char)
    return "".join(out)


class MariaDB:
    """A mariadbd of its own on 127.0.0.1 (a free port) and a socket in its folder.

    Use it as a context manager: the server is started on entering, stopped and its
    folder removed on leaving. As root it runs with --user=root (mariadbd refuses
    root otherwise)."""

    def __init__(self, prefix: str = "backupctl-test-mariadb-") -> None:
        self.server, self.install_db, self.client = need_mariadb()
        self._prefix = prefix
        self.root = Path()
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "s"  # short: a socket path has at most ~107 bytes

    def url(self, database: str = "", user: str = "root", password: str | None = None) -> str:
        """A mysql:// DSN for `database` on this server, over TCP."""
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"mysql://{auth}@{HOST}:{self.port}/{quote(database, safe='')}"

    def root_client(self, *extra: str) -> list[str]:
        """argv of the mariadb client, as root over the socket, with `extra` options."""
        return [
            self.client,
            "--no-defaults",
            f"--socket={self.socket}",
            "-uroot",
            "--default-character-set=utf8mb4",
            *extra,
        ]

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def __enter__(self) -> MariaDB:
        self.root = Path(tempfile.mkdtemp(prefix=self._prefix))
        try:
            subprocess.run(
                [
                    self.install_db,
                    "--no-defaults",
                    f"--datadir={self.root / 'data'}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--innodb-log-file-size=8M",
                    *self._as_root(),
                ],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
            for _ in range(3):  # another process may take the free port first
                if self._start():
                    return self
            raise RuntimeError(f"mariadbd did not start: {self._log_tail()}")
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> bool:
        self.port = free_port()
        log = self.root / "error.log"
        log.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [
                self.server,
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                f"--bind-address={HOST}",
                f"--pid-file={self.root / 'mariadbd.pid'}",
                f"--log-error={log}",
                f"--tmpdir={self.root}",
                "--skip-name-resolve",
                "--character-set-server=utf8mb4",
                "--innodb-log-file-size=8M",
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=0",
                "--event-scheduler=OFF",  # a test's events are dumped, never run
                *self._as_root(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C reaches the tests, whose clean-up stops it
            preexec_fn=_parent_death_signal(),
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            ping = subprocess.run(
                self.root_client("--execute=SELECT 1"),
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=30,
            )
            if ping.returncode == 0:
                return True
            time.sleep(0.1)
        raise RuntimeError(f"mariadbd was not ready after {START_SECONDS:g}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "error.log").read_text(errors="replace")[-2000:]
        return "(no error log)"

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()  # nothing in it is kept: no need to wait for a clean shutdown
            proc.wait(timeout=STOP_SECONDS)
        if self.root != Path():
            shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, text: str, database: str | None = None) -> list[tuple[str | None, ...]]:
        """Run `text` (one or more statements) as root over the socket; the rows of
        the last result, each field a string or None."""
        argv = self.root_client("--batch", "--skip-column-names")
        if database is not None:
            argv.append(f"--database={database}")
        done = subprocess.run(argv, input=text.encode(), capture_output=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb: {done.stderr.decode(errors='replace').strip()}")
        lines = done.stdout.decode().splitlines()
        return [tuple(_unescape(f) for f in line.split("\t")) for line in lines]

    def databases(self, like: str = "%") -> list[str]:
        """The databases whose names match the LIKE pattern `like`."""
        rows = self.sql(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"
            f" WHERE SCHEMA_NAME LIKE {sql_literal(like)} ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    @contextlib.contextmanager
    def session(self, database: str) -> Iterator[subprocess.Popen[bytes]]:
        """A client session kept open (statements written to its stdin), e.g. to hold
        a table lock while a backup waits for it; closed at the end."""
        proc = subprocess.Popen(
            self.root_client("--batch", "--unbuffered", f"--database={database}"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            yield proc
        finally:
            if proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def statements(session: subprocess.Popen[bytes], text: str | Sequence[str]) -> None:
    """Send statements to a `MariaDB.session`."""
    assert session.stdin is not None
    lines = [text] if isinstance(text, str) else list(text)
    session.stdin.write(("\n".join(lines) + "\n").encode())
    session.stdin.flush()
