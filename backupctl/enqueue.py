"""run-nightly --mode enqueue: plan the night, then send one message per backup to SQS."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from backupctl.config import RunSettings
from backupctl.executor import discard_safely
from backupctl.ledger import Ledger
from backupctl.queue import BATCH, Job, SqsQueue
from backupctl.registry import App
from backupctl.storage import Storages

log = logging.getLogger(__name__)

CHUNK = 1000  # rows locked, sent and marked per transaction
SENDERS = 8  # SendMessageBatch calls in flight
# Chunks in flight: while one lane waits on the ledger (lock, mark, commit), another's
# messages keep the senders busy. SKIP LOCKED keeps the lanes' chunks apart.
LANES = 2


@dataclass
class EnqueueReport:
    run_date: date
    sent: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if row["status"] == "failed")

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected or self.failed else 0


def enqueue_night(
    *,
    run_date: date,
    apps: Sequence[App],
    ledger: Ledger,
    queue: SqsQueue,
    run: RunSettings,
    resend_after: float,
    storages: Storages,
    only_app: str | None = None,
    plan: bool = True,
    claim_until: datetime | None = None,
) -> EnqueueReport:
    """Plan `run_date` (unless `plan` is False: a retry) and send what needs sending.
    A row is marked `enqueued` only once SQS accepted its message, so an unreachable
    queue leaves it as it was."""
    enabled = [app.id for app in apps if app.enabled]
    if plan:
        skipped = ledger.plan(run_date, enabled, claim_until)
    else:  # a retry: rows of apps gone from the registry are not sent again
        skipped = ledger.skip_removed(run_date, enabled)
    report = EnqueueReport(run_date)
    by_id = {app.id: app for app in apps}
    for dead in [*skipped, *ledger.reap_expired(run_date, run.max_attempts)]:
        app = by_id.get(dead.app_id)
        discard_safely(storages.get(app.storage if app else None), dead)

    lock = threading.Lock()
    accepted: set[int] = set()
    with (
        ThreadPoolExecutor(SENDERS, thread_name_prefix="sqs-send") as pool,
        ThreadPoolExecutor(LANES, thread_name_prefix="enqueue") as lanes,
    ):

        def send(rows: list[dict[str, Any]]) -> set[int]:
            jobs = [Job(r["app_id"], r["run_date"], r["id"], r["attempts"] + 1) for r in rows]
            batches = [jobs[i : i + BATCH] for i in range(0, len(jobs), BATCH)]
            rejected: dict[int, str] = {}
            for result in pool.map(queue.send, batches):
                rejected.update(result)
            ok = {job.backup_id for job in jobs} - set(rejected)
            with lock:
                report.rejected.update(rejected)
                accepted.update(ok)
            return ok

        def lane() -> int:
            """Lock, send and mark chunks until fewer than a chunk are left to lock
            (the rest are held by another lane, which sends them)."""
            marked_here, after = 0, 0
            while True:
                locked, marked, after = ledger.enqueue(
                    run_date,
                    CHUNK,
                    run.max_attempts,
                    resend_after,
                    send,
                    after_id=after,
                    app_id=only_app,
                )
                marked_here += marked
                if locked < CHUNK:
                    return marked_here

        futures = [lanes.submit(lane) for _ in range(LANES)]
        report.sent = sum(future.result() for future in futures)
    # A row one lane's message was rejected for may have been sent by another since.
    report.rejected = {i: why for i, why in report.rejected.items() if i not in accepted}
    for backup_id, reason in report.rejected.items():
        log.warning("backup %s: the queue rejected its message: %s", backup_id, reason)
    ledger.close_night(run_date)
    report.rows = ledger.night_backups(run_date)
    return report
