"""run-nightly: plan the night, then claim and run its backups in a bounded pool."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime

from backupctl.config import RunSettings
from backupctl.executor import Executor, Outcome
from backupctl.heartbeat import Heartbeat
from backupctl.kinds import KindOptions
from backupctl.ledger import Ledger, NightSummary
from backupctl.registry import App
from backupctl.registry.lookup import StaticApps
from backupctl.stop import Stop
from backupctl.storage import Storages

log = logging.getLogger(__name__)

# How long to wait for a scheduled retry before leaving it to the next run.
MAX_RETRY_SLEEP = 15 * 60.0


@dataclass
class NightReport:
    """What this run did, and where the night stands."""

    run_date: date
    outcomes: list[Outcome] = field(default_factory=list)
    rows: list[dict[str, object]] = field(default_factory=list)
    summary: NightSummary | None = None
    held_elsewhere: int = 0
    not_started: int = 0
    stopped_reason: str | None = None

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if row["status"] == "failed")

    @property
    def skipped(self) -> int:
        return sum(1 for row in self.rows if row["status"] == "skipped")

    @property
    def complete(self) -> bool:
        """Every backup of the night is final and none failed: the night is good."""
        return self.summary is not None and self.summary.status == "complete"

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.not_started else 0


def run_night(
    *,
    run_date: date,
    apps: Sequence[App],
    ledger: Ledger,
    storages: Storages,
    run: RunSettings,
    owner: str,
    claim_until: datetime | None = None,
    stop: Stop | None = None,
    on_outcome: Callable[[Outcome], None] = lambda _: None,
    kind_options: KindOptions | None = None,
    only_app: str | None = None,
    on_planned: Callable[[int], None] | None = None,
    plan: bool = True,
) -> NightReport:
    """Plan `run_date` for the enabled apps and run what is claimable until nothing is
    left, claiming nothing new from `claim_until` on (None: no limit). Rows of apps no
    longer in `apps` are skipped."""
    stop = stop or Stop()
    enabled = [app for app in apps if app.enabled]
    if plan:  # a retry runs the night as planned, minus the apps that left the registry
        skipped = ledger.plan(run_date, [app.id for app in enabled], claim_until)
    else:
        skipped = ledger.skip_removed(run_date, [app.id for app in enabled])
    report = NightReport(run_date)

    with Heartbeat(ledger, owner, run.lease) as heartbeat:
        executor = Executor(
            ledger,
            storages,
            StaticApps(apps),
            heartbeat,
            owner,
            timeout=run.timeout,
            retry_wait=run.retry_wait,
            retry_wait_max=run.retry_wait_max,
            max_attempts=run.max_attempts,
            min_size_ratio=run.min_size_ratio,
            kind_options=kind_options,
        )
        executor.reap(skipped)  # what their killed attempts left
        executor.reap(ledger.reap_expired(run_date, run.max_attempts))
        if on_planned is not None:  # a progress bar wants its total (a read of the night)
            on_planned(
                sum(
                    1
                    for row in ledger.night_backups(run_date)
                    if row["status"] != "succeeded"
                    and (only_app is None or row["app_id"] == only_app)
                )
            )
        with ThreadPoolExecutor(run.parallel, thread_name_prefix="backup") as pool:
            inflight: set[Future[Outcome]] = set()

            def may_claim() -> bool:
                if stop.event.is_set():
                    report.stopped_reason = stop.reason
                    return False
                if claim_until is not None and ledger.now() >= claim_until:
                    report.stopped_reason = "the backup window has closed"
                    return False
                return True

            while True:
                free = run.parallel - len(inflight)
                if free > 0 and may_claim():
                    for claim in ledger.claim_nightly(
                        run_date, owner, free, run.lease, run.max_attempts, only_app
                    ):
                        inflight.add(pool.submit(executor.run, claim))
                if inflight:
                    done, inflight = wait(inflight, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcome = future.result()
                        report.outcomes.append(outcome)
                        on_outcome(outcome)
                    if stop.event.is_set():
                        executor.cancel_all(f"shutdown: {stop.reason}")
                    continue
                if not may_claim():
                    break
                pending = ledger.night_pending(run_date, run.max_attempts, only_app)
                wait_s = pending["next_retry_in"]
                if pending["retryable"] and wait_s is not None:
                    wait_s = max(0.0, float(wait_s))
                    if claim_until is not None:
                        wait_s = min(wait_s, (claim_until - ledger.now()).total_seconds())
                    if wait_s <= MAX_RETRY_SLEEP and wait_s >= 0:
                        log.info("waiting %.0fs for the next retry", wait_s)
                        stop.event.wait(wait_s + 0.05)
                        continue
                break

    report.summary = ledger.close_night(run_date)
    report.rows = ledger.night_backups(run_date)
    for row in report.rows:
        if row["status"] == "running" and not row["lease_expired"]:
            report.held_elsewhere += 1
        elif row["status"] in ("pending", "enqueued") or (
            row["status"] == "running" and row["lease_expired"]
        ):
            report.not_started += 1
    return report
