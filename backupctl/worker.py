"""backupctl worker: receive a job, claim its row, run it with the executor, settle the message."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from backupctl.config import SQS_MAX_VISIBILITY, RunSettings
from backupctl.errors import LedgerUnavailable
from backupctl.executor import Executor, Outcome
from backupctl.heartbeat import Heartbeat
from backupctl.kinds import KindOptions
from backupctl.ledger import Ledger
from backupctl.logs import backup_extra
from backupctl.queue import (
    Job,
    MessageGone,
    PoisonMessage,
    QueueUnavailable,
    Received,
    SqsQueue,
    parse_job,
)
from backupctl.registry.lookup import AppLookup
from backupctl.stop import Stop
from backupctl.storage import Storages

log = logging.getLogger(__name__)

MAX_VISIBILITY = int(SQS_MAX_VISIBILITY)
RECEIVE_VISIBILITY = 30  # until the row is claimed; short, so an abandoned receive heals fast
RETRY_SOON = 2.0  # after a failed visibility extension
# While the ledger is away, how often to look again (doubling up to the last).
LEDGER_PROBE = (1.0, 30.0)


@dataclass
class WorkerReport:
    outcomes: list[Outcome] = field(default_factory=list)
    poison: int = 0
    skipped: int = 0
    unknown: int = 0  # messages for apps this worker's registry lacks, handed back

    @property
    def exit_code(self) -> int:
        return 1 if any(o.status == "failed" for o in self.outcomes) else 0


class VisibilityKeeper:
    """Keeps the messages of running backups hidden, in a thread of its own and in
    batches, so a slow SQS never delays a lease renewal (the lease, not the
    message, is what protects a row: a message shown too early is a duplicate
    delivery, which the ledger turns away)."""

    def __init__(self, queue: SqsQueue, visibility: int) -> None:
        self._queue = queue
        self._visibility = visibility
        self.interval = max(0.5, visibility / 4)
        self._held: dict[str, Received] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._new = threading.Event()  # a message just claimed: extend it now
        self._thread = threading.Thread(target=self._loop, name="visibility", daemon=True)

    def __enter__(self) -> VisibilityKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._new.set()
        self._thread.join(timeout=15)

    def hold(self, message: Received) -> None:
        """Keep `message` hidden from now on (its first extension is sent at once)."""
        with self._lock:
            self._held[message.message_id] = message
        self._new.set()

    def drop(self, message: Received) -> None:
        with self._lock:
            self._held.pop(message.message_id, None)

    def _loop(self) -> None:
        due = time.monotonic() + self.interval
        while not self._stop.is_set():
            if not self._new.wait(max(0.0, due - time.monotonic())):
                due += self.interval
            self._new.clear()
            if self._stop.is_set():
                return
            with self._lock:
                held = list(self._held.values())
            if not held:
                continue
            try:
                refused = self._queue.extend_many(held, self._visibility)
            except QueueUnavailable as exc:
                log.warning("cannot keep running backups' messages hidden: %s", exc)
                due = time.monotonic() + min(self.interval, RETRY_SOON)  # before they show
                continue
            for message_id in refused:
                log.warning("message %s: SQS refused to keep it hidden", message_id)
            if due <= time.monotonic():
                due = time.monotonic() + self.interval


class Worker:
    """Serves one queue with up to `concurrency` backups at once."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        queue: SqsQueue,
        apps: AppLookup,
        storages: Storages,
        run: RunSettings,
        owner: str,
        concurrency: int,
        kind_options: KindOptions | None = None,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
        on_night_closed: Callable[[date], None] = lambda _: None,
        ledger_outage: float = 600.0,
        keeper_queue: SqsQueue | None = None,
    ) -> None:
        self._ledger = ledger
        self._queue = queue
        self._keeper_queue = keeper_queue or queue
        self._apps = apps
        self._storages = storages
        self._run = run
        self._owner = owner
        self._concurrency = concurrency
        self._kind_options = kind_options
        self._on_outcome = on_outcome
        self._on_night_closed = on_night_closed
        self._ledger_outage = ledger_outage
        # Hidden long enough to outlast a few missed extensions; visible again soon
        # after this worker dies, when its lease has expired too.
        self.visibility = int(min(MAX_VISIBILITY, max(2, run.lease * 2)))
        self.report = WorkerReport()
        self._lock = threading.Lock()
        self._inflight: set[Future[None]] = set()
        self._poll_error: QueueUnavailable | LedgerUnavailable | None = None  # --once
        self._fatal: LedgerUnavailable | None = None  # the ledger away too long: exit 3
        self._keeper: VisibilityKeeper | None = None

    def serve(self, stop: Stop, *, once: bool, grace: float, poll: int = 20) -> WorkerReport:
        """Receive and run jobs until `stop` (or, with `once`, until the queue is drained).

        On stop: receive nothing more, let running backups finish within `grace`
        seconds, then give the rest back (lease released, message visible again).
        A ledger away for longer than `ledger_outage` stops the worker with
        LedgerUnavailable (exit 3), so that its service manager restarts it.
        """
        with (
            Heartbeat(self._ledger, self._owner, self._run.lease) as heartbeat,
            VisibilityKeeper(self._keeper_queue, self.visibility) as keeper,
        ):
            self._keeper = keeper
            executor = Executor(
                self._ledger,
                self._storages,
                self._apps,
                heartbeat,
                self._owner,
                timeout=self._run.timeout,
                retry_wait=self._run.retry_wait,
                retry_wait_max=self._run.retry_wait_max,
                max_attempts=self._run.max_attempts,
                min_size_ratio=self._run.min_size_ratio,
                kind_options=self._kind_options,
                release_to="enqueued",
                gone_app="release",  # the planner, not a worker, skips a backup
            )
            with ThreadPoolExecutor(self._concurrency, thread_name_prefix="job") as pool:
                # Long polls block for up to `poll` seconds, so they run in their own
                # thread: a SIGTERM is acted on at once, not after the poll.
                poller = threading.Thread(
                    target=self._poll,
                    args=(pool, stop, 1 if once else poll, once, executor),
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
        if self._fatal is not None:
            raise self._fatal
        if self._poll_error is not None and once:
            raise self._poll_error
        return self.report

    def _poll(
        self, pool: ThreadPoolExecutor, stop: Stop, wait_s: int, once: bool, executor: Executor
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
            # Nothing is received while the ledger is away: a message taken now could
            # only be handed back, again and again. (One cheap statement per poll.)
            try:
                if self._ledger.connector.down_since is not None:
                    raise LedgerUnavailable("the ledger is unreachable")
                self._ledger.now()
            except LedgerUnavailable as exc:
                if once:
                    self._poll_error = exc
                    return
                if not self._wait_for_ledger(stop):
                    return
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
                    self._give_back(message)
                return
            with self._lock:
                for message in received:
                    self._inflight.add(pool.submit(self._handle, executor, message))
            if once and ((not received and not busy) or self._poll_error is not None):
                return

    def _wait_for_ledger(self, stop: Stop) -> bool:
        """Probe the ledger with backoff until it answers (True) or has been away for
        `ledger_outage` (False: the worker stops, exit 3)."""
        delay, longest = LEDGER_PROBE
        while not stop.event.is_set():
            since = self._ledger.connector.down_since
            if since is None:
                return True
            away = time.monotonic() - since
            if away >= self._ledger_outage:
                self._fatal = LedgerUnavailable(
                    f"the ledger has been unreachable for {away:.0f}s ([queue] ledger_outage): "
                    "stopping so that the service manager restarts this worker"
                )
                log.error("%s", self._fatal)
                stop.request("the ledger is unreachable")
                return False
            try:
                self._ledger.now()
            except LedgerUnavailable as exc:
                log.warning("%s; not receiving until it is back", exc)
                stop.event.wait(min(delay, max(0.1, self._ledger_outage - away)))
                delay = min(delay * 2, longest)
                continue
            log.info("the ledger is back: receiving again")
            return True
        return False

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
            # The message comes back after its visibility timeout. A --once run ends
            # with exit 3 instead of claiming it did its job; a service waits for the
            # ledger to come back (see _poll).
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
        except PoisonMessage as exc:
            self._poison(message, str(exc))
            return
        if self._apps.get(job.app_id) is None:  # reloads the registry first
            if (row := self._row_of(message, job)) is not None:
                self._unknown_app(message, row)
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
            executor.reap(self._ledger.reap_expired(job.run_date, self._run.max_attempts))
            if (row := self._row_of(message, job)) is not None:
                self._settle_unclaimed(message, row)
            return
        assert self._keeper is not None
        self._keeper.hold(message)  # ours now: hidden for as long as the backup runs
        try:
            outcome = executor.run(claim)
        finally:
            self._keeper.drop(message)
        with self._lock:
            self.report.outcomes.append(outcome)
        self._on_outcome(outcome)
        if outcome.status == "released":
            self._give_back(message)
        elif outcome.status in ("succeeded", "failed", "skipped"):
            self._settle(message, claim.id)
        # "lost": another process holds the row now, and settles its own message.

    def _row_of(self, message: Received, job: Job) -> dict[str, Any] | None:
        """The ledger row a message names; None (the message deleted) if there is none."""
        row = self._ledger.backup_by_id(job.backup_id)
        if row is None or row["app_id"] != job.app_id or row["run_date"] != job.run_date:
            self._poison(message, f"no backup {job.backup_id} for {job.app_id} on {job.run_date}")
            return None
        return row

    def _unknown_app(self, message: Received, row: dict[str, Any]) -> None:
        """A message for an app this worker's registry lacks. Its registry may lag the
        planner's: the backup is neither run nor skipped here (skipping is the
        planner's call, from its registry), and the message goes back for another
        worker, or for this one once its registry has the app."""
        backup_id, app_id = int(row["id"]), str(row["app_id"])
        waiting = row["status"] in ("pending", "enqueued") or (
            row["status"] == "failed" and self._attempts_left(row)
        )
        if not waiting or row["claims_closed"]:
            self._settle_unclaimed(message, row)  # done, skipped or held: nothing to run
            return
        log.warning(
            "app %s backup %s: the app is not in this worker's registry (or is disabled): "
            "message handed back; run-nightly skips the backup if the app left the registry",
            app_id,
            backup_id,
            extra=backup_extra(app_id, backup_id),
        )
        with self._lock:
            self.report.unknown += 1
        with contextlib.suppress(MessageGone):
            self._queue.extend(message, self.visibility)

    def _poison(self, message: Received, why: str) -> None:
        log.warning("message %s: poison (%s): deleted", message.message_id, why)
        with self._lock:
            self.report.poison += 1
        self._queue.delete(message)

    def _give_back(self, message: Received) -> None:
        try:
            self._queue.extend(message, 0)
        except MessageGone:
            pass  # settled elsewhere meanwhile: nothing to give back
        except QueueUnavailable as exc:  # it shows again when its visibility runs out
            log.warning("message %s: %s", message.message_id, exc)

    def _settle_unclaimed(self, message: Received, row: dict[str, Any]) -> None:
        """The message's backup is not ours to run: done, held elsewhere, waiting for
        its retry, or past its night's window."""
        backup_id, app_id, night = int(row["id"]), str(row["app_id"]), row["run_date"]
        with self._lock:
            self.report.skipped += 1
        if row["claims_closed"] and row["status"] in ("pending", "enqueued", "failed"):
            # Marked unsent, so that an operator's `run-nightly --date` sends it at once.
            self._ledger.unsend(backup_id)
            log.warning(
                "app %s backup %s: the window of night %s has closed; not started, message "
                "deleted (`backupctl run-nightly --date %s` runs it anyway)",
                app_id,
                backup_id,
                night,
                night,
                extra=backup_extra(app_id, backup_id),
            )
        else:
            log.info(
                "app %s backup %s: %s elsewhere or already; message settled",
                app_id,
                backup_id,
                row["status"],
                extra=backup_extra(app_id, backup_id),
            )
        self._settle(message, backup_id, row)

    def _settle(self, message: Received, backup_id: int, row: dict[str, Any] | None = None) -> None:
        """Delete the message once the row is final; else show it again when it may retry."""
        row = row or self._ledger.backup_by_id(backup_id)
        assert row is not None
        try:
            if row["status"] == "failed" and self._attempts_left(row) and not row["claims_closed"]:
                retry_in = float(row["retry_in"] or 0)
                self._queue.extend(message, int(min(MAX_VISIBILITY, max(0.0, retry_in) + 1)))
                return
            # Final, held under a live lease by another process (which settles its own),
            # or past its night's window (a rerun or retry sends it again).
            self._queue.delete(message)
        except MessageGone:
            # Another worker received it meanwhile and settled it; a failed backup with
            # attempts left is sent again by the next run-nightly.
            log.info("message %s: already settled elsewhere", message.message_id)
        if row["status"] != "running":
            self._night_may_be_over(row["run_date"])

    def _attempts_left(self, row: dict[str, Any]) -> bool:
        return int(row["attempts"]) < self._run.max_attempts + int(row["extra_attempts"])

    def _night_may_be_over(self, night: date) -> None:
        if not self._ledger.night_has_open_rows(night):
            self._ledger.close_night(night)
            self._on_night_closed(night)
