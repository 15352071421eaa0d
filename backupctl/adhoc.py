"""backupctl backup APP: one ad-hoc backup, now, through the same executor."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date

from backupctl.config import RunSettings
from backupctl.executor import Executor, Outcome
from backupctl.heartbeat import Heartbeat
from backupctl.kinds import KindOptions
from backupctl.ledger import Ledger
from backupctl.registry import App
from backupctl.registry.lookup import StaticApps
from backupctl.stop import Stop
from backupctl.storage import Storages


def backup_now(
    *,
    app: App,
    registry: Sequence[App],
    today: date,
    ledger: Ledger,
    storages: Storages,
    run: RunSettings,
    owner: str,
    stop: Stop,
    kind_options: KindOptions | None = None,
) -> Outcome:
    """Record an ad-hoc backup of `app` (its own row, never the night's) and run it.
    (`registry`: every app, `app` included, whose secret variables its program
    must not see.)

    One attempt: an operator who wants another runs the command again. A stop
    request (SIGTERM, Ctrl-C) cancels it, and the row says it was interrupted.
    """
    with Heartbeat(ledger, owner, run.lease) as heartbeat:
        executor = Executor(
            ledger,
            storages,
            StaticApps(registry, enabled_only=False),  # (`app` is one of them)
            heartbeat,
            owner,
            timeout=run.timeout,
            retry_wait=0,
            kind_options=kind_options,
        )
        executor.reap(ledger.reap_adhoc(app.id))  # earlier runs killed mid-backup
        claim = ledger.start_adhoc(app.id, today, owner, run.lease)
        result: list[Outcome] = []
        errors: list[BaseException] = []

        def run_it() -> None:
            try:
                result.append(executor.run(claim))
            except BaseException as exc:  # handed to the main thread below
                errors.append(exc)

        worker = threading.Thread(target=run_it)
        worker.start()
        while worker.is_alive():
            if stop.event.wait(0.2):
                executor.cancel_all(f"interrupted ({stop.reason})")
                break
        worker.join()
    if errors:
        raise errors[0]
    return result[0]
