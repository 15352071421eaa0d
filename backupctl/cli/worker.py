"""backupctl worker."""

from __future__ import annotations

import click

from backupctl.cli import cli
from backupctl.cli.common import (
    parse_duration_option,
    recorded,
    settings_from,
    stop_on_signals,
)
from backupctl.cli.render import outcome_line
from backupctl.errors import ConfigError


@cli.command("worker")
@click.option("--queue", "queue_url", metavar="URL", help="SQS queue URL [default: [queue] url].")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    metavar="N",
    help="Backups at once [default: [run] parallel].",
)
@click.option("--once", is_flag=True, help="Drain the queue, then exit (cron, tests).")
@click.option(
    "--grace",
    callback=parse_duration_option,
    metavar="DURATION",
    help="On SIGTERM, time to finish running backups [default: [queue] grace].",
)
@click.pass_context
def worker(
    ctx: click.Context,
    queue_url: str | None,
    concurrency: int | None,
    once: bool,
    grace: float | None,
) -> None:
    """Take backup jobs from the queue and run them, until stopped.

    Each message names an app, a night and a backup id; the worker looks the app up
    in its own registry and claims the backup's ledger row before doing anything, so
    a duplicate or stale message never makes a second backup. Messages that name no
    backup this worker may run (bad JSON, unknown version, app or backup) are logged
    and deleted.

    The first SIGTERM stops receiving and lets running backups finish within the
    grace period; past it, their leases are released and their messages made
    visible again. A second SIGTERM stops at once, the same way.

    \b
    Example:
      backupctl worker --queue https://sqs.eu-west-1.amazonaws.com/123456789012/backups
    """
    settings = settings_from(ctx, {"queue.url": queue_url, "queue.grace": grace})
    if not settings.queue_url:
        raise ConfigError(["worker needs a queue: --queue URL, [queue] url or BACKUPCTL_QUEUE_URL"])
    from backupctl.context import kind_options, load_apps, open_ledger, open_storages
    from backupctl.executor import new_owner
    from backupctl.notify import night_closed
    from backupctl.queue import SqsQueue
    from backupctl.worker import Worker

    apps = {app.id: app for app in load_apps(settings)}
    storages = open_storages(settings)
    ledger = open_ledger(settings)
    stop = stop_on_signals()
    quiet = bool(ctx.obj.get("quiet"))
    with recorded(ledger, "worker", None) as exit_code:
        report = Worker(
            ledger=ledger,
            queue=SqsQueue(settings.queue_url),
            apps=apps,
            storages=storages,
            run=settings.run,
            owner=new_owner(),
            concurrency=concurrency or settings.run.parallel,
            kind_options=kind_options(settings),
            on_outcome=lambda o: (
                click.echo(outcome_line(o)) if not quiet or o.status == "failed" else None
            ),
            on_night_closed=lambda night: night_closed(
                settings, ledger, night, [a.id for a in apps.values() if a.enabled]
            ),
        ).serve(stop, once=once, grace=settings.queue_grace)
        exit_code[0] = report.exit_code
    ran = len(report.outcomes)
    if quiet and not report.exit_code:
        ctx.exit(0)
    click.echo(
        f"worker: {ran} backups run, {report.skipped} messages for backups done or held "
        f"elsewhere, {report.poison} poison messages deleted"
        + (f" (stopped: {stop.reason})" if stop.reason else "")
    )
    ctx.exit(report.exit_code)
