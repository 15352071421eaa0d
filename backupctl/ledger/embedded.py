"""The embedded ledger: a private Postgres (pgserver) in the user's state directory."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from backupctl.errors import LedgerUnavailable

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_handles(pgdata: Path) -> None:
    # pgserver stops the server when the last process holding it exits, counting
    # holders in a file; a holder killed with SIGKILL stays listed forever.
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


FIXES = (
    "set state_dir to a folder this user can write (e.g. /var/lib/backupctl), "
    "or database_url to a Postgres of your own"
)


def _user() -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


def _unwritable(folder: Path) -> str | None:
    """Why the embedded ledger cannot keep its files in `folder`, or None if it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {folder} ({exc.strerror or type(exc).__name__})"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable by {_user()}"
    return None


def embedded_database_url(state_dir: Path) -> str:
    """Start (or join) the embedded Postgres under `state_dir`; return its URL.

    The server stops when the last backupctl process using it exits.
    """
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir, which servers often lack.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = state_dir / "pgdata"
    problem = _unwritable(state_dir)
    if problem is None and pgdata.exists() and not os.access(pgdata, os.W_OK | os.X_OK):
        problem = f"{pgdata} is not writable by {_user()}"
    if problem is not None:
        raise LedgerUnavailable(f"the embedded ledger cannot start: {problem}; {FIXES}")
    try:
        if pgdata.exists():
            _forget_dead_handles(pgdata)
        log.debug("starting the embedded Postgres in %s", pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        return str(server.get_uri())
    except Exception as exc:  # pgserver raises whatever initdb or pg_ctl raised
        log_file = pgdata / "log"
        see = f"see {log_file}; " if log_file.is_file() else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LedgerUnavailable(
            f"the embedded ledger could not start in {pgdata} ({type(exc).__name__}: {first}); "
            f"{see}{FIXES}"
        ) from None
