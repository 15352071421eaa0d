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


def embedded_database_url(state_dir: Path) -> str:
    """Start (or join) the embedded Postgres under `state_dir`; return its URL.

    The server stops when the last backupctl process using it exits.
    """
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir, which servers often lack.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = state_dir / "pgdata"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if pgdata.exists():
            _forget_dead_handles(pgdata)
        log.debug("starting the embedded Postgres in %s", pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        return str(server.get_uri())
    except Exception as exc:  # pgserver raises whatever initdb or pg_ctl raised
        raise LedgerUnavailable(
            f"the embedded ledger could not start in {pgdata} ({type(exc).__name__}: {exc}); "
            f"see {pgdata / 'log'}, or set database_url"
        ) from None
