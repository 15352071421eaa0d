"""The ledger's connections: a pool that survives a database restart, and the one
boundary where driver errors become the project's own.

psycopg_pool keeps the connections: it discards one that broke, opens new ones in the
background with backoff, and hands each thread its own, so a statement waiting on a
row lock never holds up another thread's. What it does not do is retry the statement
that met the broken connection: `Connector.run` does, for as long as the caller can
afford (`outage` seconds), which is what lets a night go on across a ledger restart.
Every statement backupctl runs is safe to run twice (see queries.sql: claims carry a
tag, finishes recognise their own earlier commit), so a retry after an ambiguous
commit changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.rows import dict_row

from backupctl.errors import ConfigError, LedgerUnavailable
from backupctl.redact import redact_text, redact_url

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

T = TypeVar("T")

# Between retries of a statement while the ledger is away: short at first (a broken
# pooled connection is usually replaced at once), then every couple of seconds.
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


def connect_once(url: str, schema: str) -> psycopg.Connection[dict[str, Any]]:
    """One connection, now: a clear error if the URL is malformed or the server is away."""
    try:
        with driver_errors(url):
            return psycopg.connect(url, **connection_kwargs(schema))
    except psycopg.ProgrammingError as exc:  # a malformed URL or an unknown option
        raise ConfigError([f"database_url: {first_line(exc, url)}"]) from None


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


class Connector:
    """A pool of ledger connections; `run` retries a unit of work across an outage."""

    def __init__(
        self, url: str, schema: str, *, size: int, outage: float, io_timeout: float = 60.0
    ) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self.schema = schema
        self.outage = outage
        # How long a first try waits for a pooled connection: past this, the ledger
        # is away, and the outage (if the caller can afford one) is counted.
        self._first_wait = min(CONNECT_TIMEOUT, io_timeout, max(1.0, outage))
        self._down_since: float | None = None
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            kwargs=connection_kwargs(schema, io_timeout=io_timeout),
            min_size=1,
            max_size=max(1, size),
            open=False,
            name="backupctl-ledger",
            # The pool's own reconnection keeps trying for as long as a caller may wait.
            reconnect_timeout=max(60.0, outage),
            max_idle=300.0,
        )
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close(timeout=5)

    @property
    def down_since(self) -> float | None:
        """time.monotonic() of the first failure of the outage in progress, if any."""
        return self._down_since

    def run(self, work: Callable[[psycopg.Connection[dict[str, Any]]], T]) -> T:
        """Run `work` on a pooled connection. A lost connection is retried, with
        backoff, until `outage` seconds have passed since the first failure; then
        LedgerUnavailable. `work` must be safe to run again (it may have committed)."""
        delay = FIRST_RETRY
        deadline: float | None = None
        since = self._down_since
        if since is not None and time.monotonic() - since >= self.outage:
            # Away for longer than this caller can wait already: one quick try only.
            deadline = time.monotonic() + 0.5
        while True:
            now = time.monotonic()
            wait = self._first_wait if deadline is None else max(0.1, deadline - now)
            try:
                with self._pool.connection(timeout=wait) as conn:
                    result = work(conn)
            except psycopg.Error as exc:
                if not transient(exc):
                    with driver_errors(self.url):
                        raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.outage
                    self._note_down(now, exc)
                if now >= deadline:
                    raise self._gave_up(exc) from None
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, MAX_RETRY)
                continue
            self._note_up()
            return result

    def _gave_up(self, exc: psycopg.Error) -> LedgerUnavailable:
        from psycopg_pool import PoolTimeout

        if isinstance(exc, PoolTimeout):
            # "couldn't get a connection after 10 sec" says nothing: ask the server why.
            try:
                connect_once(self.url, self.schema).close()
            except (LedgerUnavailable, ConfigError) as direct:
                return LedgerUnavailable(str(direct))
        return unavailable(exc, self.url)

    def _note_down(self, now: float, exc: psycopg.Error) -> None:
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
        if first and self.outage > 0:
            log.warning("%s; retrying for up to %.0fs", unavailable(exc, self.url), self.outage)

    def _note_up(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("the ledger is reachable again after %.1fs", time.monotonic() - since)
