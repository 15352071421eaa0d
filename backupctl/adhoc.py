"""backupctl backup APP: one ad-hoc backup, now, through the same executor."""

from __future__ import annotations

import threading
from datetime import date

from backupctl.config import RunSettings
from backupctl.executor import Executor, Outcome
from backupctl.heartbeat import Heartbeat
from backupctl.kinds import KindOptions
from backupctl.ledger import Ledger
from backupctl.registry import App
from backupctl.stop import Stop
from backupctl.storage import Storages


def backup_now(
    *,
    app: App,
    today: date,
    ledger: Ledger,
    storages: Storages,
    run: RunSettings,
    owner: str,
    stop: Stop,
    kind_options: KindOptions | None = None,
) -> Outcome:
    """Record an ad-hoc backup of `app` (its own row, never the night's) and run it.

    One attempt: an operator who wants another runs the command again. A stop
    request (SIGTERM, Ctrl-C) cancels it, and the row says it was interrupted.
    """
    claim = ledger.start_adhoc(app.id, today, owner, run.lease)
    with Heartbeat(ledger, owner, run.lease) as heartbeat:
        executor = Executor(
            ledger,
            storages,
            {app.id: app},
            heartbeat,
            owner,
            timeout=run.timeout,
            retry_wait=0,
            kind_options=kind_options,
        )
        result: list[Outcome] = []
        worker = threading.Thread(target=lambda: result.append(executor.run(claim)))
        worker.start()
        while worker.is_alive():
            if stop.event.wait(0.2):
                executor.cancel_all(f"interrupted ({stop.reason})")
                break
        worker.join()
    return result[0]
