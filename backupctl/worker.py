"""backupctl worker: receive a job, claim its row, run it with the executor, settle the message."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date

from backupctl.config import RunSettings
from backupctl.errors import LedgerUnavailable
from backupctl.executor import Executor, Outcome
from backupctl.heartbeat import Heartbeat
from backupctl.kinds import KindOptions
from backupctl.ledger import Ledger
from backupctl.logs import backup_extra
from backupctl.queue import PoisonMessage, QueueUnavailable, Received, SqsQueue, parse_job
from backupctl.registry import App
from backupctl.stop import Stop
from backupctl.storage import Storages

log = logging.getLogger(__name__)

MAX_VISIBILITY = 12 * 3600  # SQS's limit
RECEIVE_VISIBILITY = 30  # until the row is claimed; short, so an abandoned receive heals fast


@dataclass
class WorkerReport:
    outcomes: list[Outcome] = field(default_factory=list)
    poison: int = 0
    skipped: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if any(o.status == "failed" for o in self.outcomes) else 0


class Worker:
    """Serves one queue with up to `concurrency` backups at once."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        queue: SqsQueue,
        apps: Mapping[str, App],
        storages: Storages,
        run: RunSettings,
        owner: str,
        concurrency: int,
        kind_options: KindOptions | None = None,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
        on_night_closed: Callable[[date], None] = lambda _: None,
    ) -> None:
        self._ledger = ledger
        self._queue = queue
        self._apps = {app_id: app for app_id, app in apps.items() if app.enabled}
        self._storages = storages
        self._run = run
        self._owner = owner
        self._concurrency = concurrency
        self._kind_options = kind_options
        self._on_outcome = on_outcome
        self._on_night_closed = on_night_closed
        # Hidden long enough to survive between two heartbeats; visible again soon after
        # this worker dies, when its lease has expired too.
        self.visibility = int(min(MAX_VISIBILITY, max(2, run.lease * 2)))
        self.report = WorkerReport()
        self._lock = threading.Lock()
        self._inflight: set[Future[None]] = set()
        self._poll_error: QueueUnavailable | LedgerUnavailable | None = None

    def serve(self, stop: Stop, *, once: bool, grace: float, poll: int = 20) -> WorkerReport:
        """Receive and run jobs until `stop` (or, with `once`, until the queue is drained).

        On stop: receive nothing more, let running backups finish within `grace`
        seconds, then give the rest back (lease released, message visible again).
        """
        with Heartbeat(self._ledger, self._owner, self._run.lease) as heartbeat:
            executor = Executor(
                self._ledger,
                self._storages,
                self._apps,
                heartbeat,
                self._owner,
                timeout=self._run.timeout,
                retry_wait=self._run.retry_wait,
                kind_options=self._kind_options,
                release_to="enqueued",
            )
            with ThreadPoolExecutor(self._concurrency, thread_name_prefix="job") as pool:
                # Long polls block for up to `poll` seconds, so they run in their own
                # thread: a SIGTERM is acted on at once, not after the poll.
                poller = threading.Thread(
                    target=self._poll,
                    args=(pool, executor, stop, 1 if once else poll, once),
                    name="poller",
                    daemon=True,
                )
                poller.start()
                while poller.is_alive() and not stop.event.wait(0.2):
                    pass
                self._wind_down(executor, stop, grace)
                # A poll still in progress is not waited for: what it brings in is
                # hidden for RECEIVE_VISIBILITY only, or handed back if it returns now.
                poller.join(timeout=0 if stop.hard.is_set() else 1)
        if self._poll_error is not None and once:
            raise self._poll_error
        return self.report

    def _poll(
        self, pool: ThreadPoolExecutor, executor: Executor, stop: Stop, wait_s: int, once: bool
    ) -> None:
        while not stop.event.is_set():
            with self._lock:
                self._inflight = {f for f in self._inflight if not f.done()}
                free = self._concurrency - len(self._inflight)
                busy = bool(self._inflight)
                running = set(self._inflight)
            if free <= 0:  # receive again as soon as a slot frees up
                wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                continue
            try:
                received = self._queue.receive(
                    free, wait_s, min(RECEIVE_VISIBILITY, self.visibility)
                )
            except QueueUnavailable as exc:
                if once:  # cron-driven: say so and stop; a service keeps trying
                    self._poll_error = exc
                    return
                log.warning("%s; retrying in 5s", exc)
                stop.event.wait(5)
                continue
            if stop.event.is_set():
                for message in received:  # not ours to start any more
                    self._queue.extend(message, 0)
                return
            with self._lock:
                for message in received:
                    self._inflight.add(pool.submit(self._handle, executor, message))
            if once and ((not received and not busy) or self._poll_error is not None):
                return

    def _wind_down(self, executor: Executor, stop: Stop, grace: float) -> None:
        """Let running backups finish within `grace`; then give the rest back."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not stop.hard.is_set():
            with self._lock:
                pending = {f for f in self._inflight if not f.done()}
            if not pending:
                return
            wait(pending, timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        with self._lock:
            pending = {f for f in self._inflight if not f.done()}
        if pending:
            log.warning(
                "giving %d running backups back (%s)",
                len(pending),
                "second signal" if stop.hard.is_set() else "grace period over",
            )
            executor.cancel_all("shutdown: grace period over")
            wait(pending)

    def _handle(self, executor: Executor, message: Received) -> None:
        try:
            self._handle_job(executor, message)
        except (LedgerUnavailable, QueueUnavailable) as exc:
            # The message comes back after its visibility timeout; a --once run ends
            # with exit 3 instead of claiming it did its job.
            log.error("message %s: %s", message.message_id, exc)
            with self._lock:
                self._poll_error = self._poll_error or exc
        except Exception:
            # One bad job never stops the loop; the message comes back after its
            # visibility timeout and the ledger decides again.
            log.exception("message %s: unexpected error", message.message_id)

    def _handle_job(self, executor: Executor, message: Received) -> None:
        try:
            job = parse_job(message.body)
            if job.app_id not in self._apps:
                raise PoisonMessage(f"app {job.app_id!r} is not in this worker's registry")
        except PoisonMessage as exc:
            log.warning("message %s: poison (%s): deleted", message.message_id, exc)
            with self._lock:
                self.report.poison += 1
            self._queue.delete(message)
            return
        claim = self._ledger.claim_backup(
            job.backup_id,
            job.app_id,
            job.run_date,
            self._owner,
            self._run.lease,
            self._run.max_attempts,
        )
        if claim is None:
            # A holder that died on the last attempt leaves a row nobody may claim:
            # fail it here, or the night never ends.
            for dead in self._ledger.reap_expired(job.run_date, self._run.max_attempts):
                executor.discard_leftovers(dead)
            self._settle_unclaimed(message, job.backup_id, job.app_id, job.run_date)
            return
        self._queue.extend(message, self.visibility)  # ours now: hidden as long as the lease
        outcome = executor.run(claim, on_renew=lambda: self._queue.extend(message, self.visibility))
        with self._lock:
            self.report.outcomes.append(outcome)
        self._on_outcome(outcome)
        if outcome.status == "released":
            self._queue.extend(message, 0)
        elif outcome.status in ("succeeded", "failed"):
            self._settle(message, claim.id)
        # "lost": another process holds the row now, and settles its own message.

    def _settle_unclaimed(
        self, message: Received, backup_id: int, app_id: str, night: date
    ) -> None:
        row = self._ledger.backup_by_id(backup_id)
        if row is None or row["app_id"] != app_id or row["run_date"] != night:
            log.warning(
                "message %s: poison (no backup %s for %s on %s): deleted",
                message.message_id,
                backup_id,
                app_id,
                night,
            )
            with self._lock:
                self.report.poison += 1
            self._queue.delete(message)
            return
        with self._lock:
            self.report.skipped += 1
        log.info(
            "app %s backup %s: %s elsewhere or already; message settled",
            app_id,
            backup_id,
            row["status"],
            extra=backup_extra(app_id, backup_id),
        )
        self._settle(message, backup_id, row)

    def _settle(
        self, message: Received, backup_id: int, row: dict[str, object] | None = None
    ) -> None:
        """Delete the message once the row is final; else show it again when it may retry."""
        row = row or self._ledger.backup_by_id(backup_id)
        assert row is not None
        attempts_left = int(str(row["attempts"])) < self._run.max_attempts + int(
            str(row["extra_attempts"])
        )
        if row["status"] == "failed" and attempts_left:
            retry_in = float(str(row["retry_in"] or 0))
            self._queue.extend(message, int(min(MAX_VISIBILITY, max(0.0, retry_in) + 1)))
            return
        # Final, or held under a live lease by another process (which settles its own).
        self._queue.delete(message)
        night = row["run_date"]
        assert isinstance(night, date)
        if row["status"] != "running" and not self._ledger.night_has_open_rows(night):
            self._ledger.close_night(night)
            self._on_night_closed(night)
