"""backupctl run-nightly."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, recorded, settings_from, stop_on_signals, terse
from backupctl.cli.render import OutcomePrinter, emit_json
from backupctl.errors import ConfigError
from backupctl.nights import next_window_opens, resolve_night

if TYPE_CHECKING:
    from backupctl.config import Settings
    from backupctl.ledger import Ledger
    from backupctl.nightly import NightReport
    from backupctl.notify import NightMonitor
    from backupctl.registry import App
    from backupctl.storage import Storages


def _summary(report: NightReport) -> str:
    now = {s: sum(1 for o in report.outcomes if o.status == s) for s in ("succeeded", "failed")}
    already = sum(1 for row in report.rows if row["status"] == "succeeded") - now["succeeded"]
    parts = [f"{now['succeeded']} backed up now", f"{max(already, 0)} already done"]
    if report.failed:
        parts.append(f"{report.failed} failed")
    if report.skipped:
        parts.append(f"{report.skipped} skipped (no longer in the registry)")
    if report.held_elsewhere:
        parts.append(f"{report.held_elsewhere} running in another process (left alone)")
    if report.not_started:
        parts.append(f"{report.not_started} not started")
    text = f"night {report.run_date}: " + ", ".join(parts)
    if report.stopped_reason:
        text += f" (stopped claiming: {report.stopped_reason})"
    return text


@cli.command("run-nightly")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    metavar="YYYY-MM-DD",
    help="Run this night instead of tonight (ignores the window).",
)
@click.option(
    "--mode",
    type=click.Choice(["direct", "enqueue"]),
    default=None,
    help="direct: back up here; enqueue: send jobs to workers.",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Backups at once (direct mode).",
)
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Run although the registry lost more than [run] max_shrink of the last night's apps.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def run_nightly(
    ctx: click.Context,
    run_date: date | None,
    mode: str | None,
    parallel: int | None,
    allow_shrink: bool,
    as_json: bool,
) -> None:
    """Back up every enabled app once for tonight; a rerun resumes or does nothing.

    A registry that lists no enabled apps, or that lost more than [run] max_shrink
    of the apps the last night planned, is refused (exit 2, nothing planned).

    \b
    Exit codes: 0 all done, 1 some backups failed or did not run,
    2 configuration or registry error (nothing changed), 3 ledger unreachable.

    \b
    Off a terminal (cron) a run that did its work, or nothing, prints nothing; failures
    always print. -v prints the summary anyway.

    \b
    Examples:
      backupctl run-nightly
      backupctl run-nightly --date 2026-11-28
    \b
    In a crontab (cron's PATH is /usr/bin:/bin, so the path is absolute):
      5 * * * *  /usr/local/bin/backupctl run-nightly
    """
    settings = settings_from(ctx, {"run.mode": mode, "run.parallel": parallel})
    from backupctl.context import (
        kind_options,
        load_apps,
        open_ledger,
        open_storages,
        registry_source,
    )
    from backupctl.executor import new_owner
    from backupctl.nightly import run_night
    from backupctl.notify import NightMonitor
    from backupctl.registry.guard import check_night_registry

    apps = load_apps(settings)
    try:
        storages = open_storages(settings)
    except ValueError as exc:
        raise ConfigError([f"storage: {exc}"]) from None

    now = datetime.now(UTC)
    night, claim_until = resolve_night(run_date, now, settings.run.window, settings.timezone)
    if night is None:
        opens = next_window_opens(now, settings.run.window, settings.timezone)
        local = opens.astimezone(settings.timezone)
        if as_json:
            emit_json("run-nightly", {"run_date": None, "outside_window": True, "opens": opens})
        elif not terse(ctx):
            click.echo(
                f"outside the backup window {settings.run.window} ({settings.timezone.key}); "
                f"nothing to do. It opens at {local:%Y-%m-%d %H:%M %Z}."
            )
        return

    command = "run-nightly" + (" --mode enqueue" if settings.run.mode == "enqueue" else "")
    monitor = NightMonitor(settings, command)

    def guard(ledger: Ledger | None) -> None:
        try:
            check_night_registry(
                apps,
                registry_source(settings),
                ledger,
                night,
                max_shrink=settings.run.max_shrink,
                allow_shrink=allow_shrink,
            )
        except ConfigError as exc:  # an empty night must alarm, not just exit 2
            monitor.died(night, exc)
            raise

    guard(None)  # before the ledger is even opened
    ledger = open_ledger(
        settings, workers=settings.run.parallel if settings.run.mode == "direct" else 1
    )
    guard(ledger)
    if settings.run.mode == "enqueue":
        _enqueue(ctx, settings, apps, ledger, storages, night, claim_until, monitor, as_json)
        return
    stop = stop_on_signals()

    quiet = terse(ctx)
    monitor.started(night)
    with (
        recorded(ledger, "run-nightly", night) as exit_code,
        OutcomePrinter(quiet=quiet, as_json=as_json) as printer,
    ):
        try:
            report = run_night(
                run_date=night,
                apps=apps,
                ledger=ledger,
                storages=storages,
                run=settings.run,
                owner=new_owner(),
                claim_until=claim_until,
                stop=stop,
                on_outcome=printer.outcome,
                on_planned=printer.planned if printer.shows_progress else None,
                kind_options=kind_options(settings),
            )
        except BaseException as exc:  # monitoring hears of a run that died, too
            monitor.died(night, exc)
            raise
        exit_code[0] = report.exit_code
    monitor.finished(
        ledger,
        night,
        ok=report.complete,
        rows=report.rows,
        night_status=report.summary.status if report.summary else None,
        app_ids=[app.id for app in apps if app.enabled],
        note=report.stopped_reason,
        # Rows still running in another process: that process pings how it ends.
        ping=report.exit_code != 0 or report.complete,
    )
    if as_json:
        emit_json(
            "run-nightly",
            {
                "run_date": night,
                "night_status": report.summary.status if report.summary else None,
                "outcomes": [
                    {
                        "app_id": o.claim.app_id,
                        "backup_id": o.claim.id,
                        "attempt": o.claim.attempt,
                        "status": o.status,
                        "seconds": round(o.seconds, 3),
                        "size_bytes": o.size,
                        "error": o.error,
                    }
                    for o in report.outcomes
                ],
                "failed": report.failed,
                "skipped": report.skipped,
                "running_elsewhere": report.held_elsewhere,
                "not_started": report.not_started,
                "exit_code": report.exit_code,
            },
        )
    elif not quiet or report.exit_code:
        click.echo(_summary(report))
    ctx.exit(report.exit_code)


def _enqueue(
    ctx: click.Context,
    settings: Settings,
    apps: list[App],
    ledger: Ledger,
    storages: Storages,
    night: date,
    claim_until: datetime | None,
    monitor: NightMonitor,
    as_json: bool,
) -> None:
    from backupctl.enqueue import enqueue_night
    from backupctl.queue import SqsQueue

    assert settings.queue_url is not None  # the configuration requires it in enqueue mode
    queue = SqsQueue(settings.queue_url)
    monitor.started(night)
    with recorded(ledger, "run-nightly", night) as exit_code:
        report = enqueue_night(
            run_date=night,
            apps=apps,
            ledger=ledger,
            queue=queue,
            run=settings.run,
            resend_after=settings.queue_resend_after,
            storages=storages,
            claim_until=claim_until,
        )
        exit_code[0] = report.exit_code
    rejected = f"{len(report.rejected)} rejected by the queue" if report.rejected else None
    monitor.finished(
        ledger,
        night,
        ok=report.exit_code == 0,
        rows=report.rows,
        night_status=None,
        ping=report.exit_code != 0,  # else the worker that finishes the night pings
        app_ids=[app.id for app in apps if app.enabled],
        note=rejected,
    )
    counts = Counter(str(row["status"]) for row in report.rows)
    if as_json:
        emit_json(
            "run-nightly",
            {
                "run_date": night,
                "mode": "enqueue",
                "sent": report.sent,
                "rejected": {str(k): v for k, v in report.rejected.items()},
                "by_status": dict(counts),
                "exit_code": report.exit_code,
            },
        )
    elif not terse(ctx) or report.exit_code:
        parts = [f"{report.sent} enqueued now"]
        parts += [f"{n} {status}" for status, n in sorted(counts.items())]
        if report.rejected:
            parts.append(f"{len(report.rejected)} rejected by the queue (left pending)")
        click.echo(f"night {night}: " + ", ".join(parts))
    ctx.exit(report.exit_code)
