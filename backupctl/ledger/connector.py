"""The ledger's connections: reused, replaced when they break, and retried across a
database restart; and the one boundary where driver errors become the project's own.

Each thread takes a connection of its own (an idle one, or a new one), so a statement
waiting on a row lock never holds up another thread's. A connection that broke is
dropped; the statement that met it is run again on a new one, with a short backoff,
for as long as the caller can afford (`outage` seconds since the outage began): that
is what lets a night go on across a ledger restart.

Not psycopg_pool: its reconnection backs off exponentially (attempts at 0, 1, 3, 7,
... 127, 255 s) and a pool waits for those attempts, so a database that is back after
two minutes may get no connection for two more, past a 5-minute lease's budget. Here
a new connection is tried at each retry, at most 2 s apart, which is all the pooling
backupctl needs (a handful of threads, statements of milliseconds).

Every statement backupctl runs may thus run twice, its first run having committed
unseen. None does harm: claims carry a tag that is looked for before a claim runs
again, finishes recognise their own earlier commit, the rest are compare-and-set or
idempotent. A second run's answer may miss what the first did (a reap returns no
rows the second time); what that leaves in storage, `verify --orphans` finds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from backupctl.errors import ConfigError, LedgerUnavailable
from backupctl.redact import redact_text, redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = psycopg.Connection[dict[str, Any]]

# Between retries of a statement while the ledger is away: short at first (a broken
# idle connection is usually replaced at once), then every couple of seconds.
FIRST_RETRY = 0.1
MAX_RETRY = 2.0
CONNECT_TIMEOUT = 10


def first_line(exc: BaseException, url: str) -> str:
    """The first line of a driver error, with the URL and its password masked."""
    text = str(exc).strip()
    return redact_text(text.splitlines()[0] if text else type(exc).__name__, _secrets(url))


def _secrets(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return [url] + ([password, quote(password)] if password else [])


def unavailable(exc: BaseException, url: str) -> LedgerUnavailable:
    return LedgerUnavailable(
        f"the ledger database is unreachable ({redact_url(url)}): {first_line(exc, url)}"
    )


def refused(exc: BaseException, url: str) -> LedgerUnavailable:
    # A replica, a role without the rights the ledger needs: it can't be used now.
    return LedgerUnavailable(
        f"the ledger database refused ({redact_url(url)}): {first_line(exc, url)}"
    )


@contextmanager
def driver_errors(url: str) -> Iterator[None]:
    """Turn a driver error into LedgerUnavailable (exit 3, one line). Other
    programming errors are our bugs and stay as they are."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise unavailable(exc, url) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise refused(exc, url) from None
    except psycopg.ProgrammingError:
        raise
    except psycopg.Error as exc:
        raise refused(exc, url) from None


def transient(exc: psycopg.Error) -> bool:
    """Errors a retry can outlive: a lost or refused connection, a server shutting
    down or starting up, a deadlock, a replica that is being promoted."""
    return isinstance(
        exc,
        psycopg.OperationalError
        | psycopg.errors.ReadOnlySqlTransaction
        | psycopg.errors.AdminShutdown
        | psycopg.errors.CannotConnectNow,
    )


def connection_kwargs(schema: str, *, io_timeout: float = 60.0) -> dict[str, Any]:
    """What every ledger connection is opened with."""
    return {
        "autocommit": True,
        "row_factory": dict_row,
        "connect_timeout": int(min(CONNECT_TIMEOUT, max(2, io_timeout))),
        "options": f"-c search_path={schema}",
        "application_name": "backupctl",
        # A dead peer is noticed within io_timeout, not after hours of TCP retries.
        "keepalives": 1,
        "keepalives_idle": int(max(1, min(20, io_timeout / 3))),
        "keepalives_interval": int(max(1, min(10, io_timeout / 6))),
        "keepalives_count": 3,
        "tcp_user_timeout": int(io_timeout * 1000),
    }


def connect_once(url: str, schema: str) -> Connection:
    """One connection, now: a clear error if the URL is malformed or the server is away."""
    try:
        with driver_errors(url):
            return psycopg.connect(url, **connection_kwargs(schema))
    except psycopg.ProgrammingError as exc:  # a malformed URL or an unknown option
        raise ConfigError([f"database_url: {first_line(exc, url)}"]) from None


class Connector:
    """Ledger connections for any number of threads; `run` retries a unit of work
    across an outage. At most `size` idle connections are kept."""

    def __init__(
        self, url: str, schema: str, *, size: int, outage: float, io_timeout: float = 60.0
    ) -> None:
        self.url = url
        self.schema = schema
        self.outage = outage
        self._size = max(1, size)
        self._kwargs = connection_kwargs(schema, io_timeout=io_timeout)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._down_since: float | None = None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @property
    def down_since(self) -> float | None:
        """time.monotonic() of the first failure of the outage in progress, if any."""
        return self._down_since

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = psycopg.connect(self.url, **self._kwargs)
        try:
            yield conn
        finally:
            reusable = (
                not conn.closed
                and not conn.broken
                and conn.info.transaction_status == TransactionStatus.IDLE
            )
            with self._lock:
                kept = reusable and len(self._idle) < self._size
                if kept:
                    self._idle.append(conn)
            if not kept:
                conn.close()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a connection of this thread's. A lost connection is retried,
        with backoff, until `outage` seconds have passed since the outage began; then
        LedgerUnavailable. `work` must be safe to run again (it may have committed)."""
        delay = FIRST_RETRY
        deadline: float | None = None
        while True:
            try:
                with self._connection() as conn:
                    result = work(conn)
            except psycopg.Error as exc:
                if not transient(exc):
                    with driver_errors(self.url):
                        raise
                now = time.monotonic()
                if deadline is None:
                    since = self._note_down(now, exc)
                    # Counted from when the outage began, for every caller alike.
                    deadline = max(since + self.outage, now + 0.5)
                if now >= deadline:
                    raise unavailable(exc, self.url) from None
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, MAX_RETRY)
                continue
            self._note_up()
            return result

    def _note_down(self, now: float, exc: psycopg.Error) -> float:
        """Record the outage (if this is its first failure); return when it began.
        The idle connections go too: after a restart they are all broken."""
        with self._lock:
            idle, self._idle = self._idle, []
            first = self._down_since is None
            if first:
                self._down_since = now
            since = self._down_since
        for conn in idle:
            conn.close()
        assert since is not None
        if first and self.outage > 0:
            log.warning("%s; retrying for up to %.0fs", unavailable(exc, self.url), self.outage)
        return since

    def _note_up(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("the ledger is reachable again after %.1fs", time.monotonic() - since)
