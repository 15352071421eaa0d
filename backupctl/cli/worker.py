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
from backupctl.config import SQS_MAX_VISIBILITY
from backupctl.errors import ConfigError
from backupctl.wording import plural


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
    a duplicate or stale message never makes a second backup. The registry is
    reloaded when its file changes and when a message names an app the worker does
    not know; a message for an app that is not in it even then is handed back
    (hidden for twice the lease), never run or deleted: whether that backup is
    skipped is the planner's call (run-nightly, from its registry). Messages that
    name no backup (bad JSON, unknown version, no such backup) are logged and
    deleted.

    While the ledger is unreachable the worker receives nothing and looks again with
    backoff; after [queue] ledger_outage it exits with status 3, so that systemd or
    Kubernetes restarts it.

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
    if settings.run.timeout > SQS_MAX_VISIBILITY:
        raise ConfigError(
            [
                f"[run] timeout = {settings.run.timeout:g}s: SQS keeps a message hidden for "
                "at most 12h, so a worker's backups must finish within 12h"
            ]
        )
    from backupctl.context import (
        kind_options,
        load_apps,
        open_ledger,
        open_registry,
        open_storages,
    )
    from backupctl.executor import new_owner
    from backupctl.notify import night_closed
    from backupctl.queue import SqsQueue, sqs_client
    from backupctl.registry.guard import no_apps_problem
    from backupctl.registry.lookup import LiveRegistry
    from backupctl.worker import Worker

    source = open_registry(settings)
    loaded = load_apps(settings, source)
    if (problem := no_apps_problem(loaded, source.label)) is not None:
        raise ConfigError([problem])
    apps = LiveRegistry(
        loaded,
        source=source.label,
        load=lambda: load_apps(settings, source),
        stamp=source.stamp(),  # None (an API, a query): reloaded at most every 30s
        max_shrink=settings.run.max_shrink,
    )
    storages = open_storages(settings)
    workers = concurrency or settings.run.parallel
    ledger = open_ledger(settings, workers=workers)
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
            concurrency=workers,
            kind_options=kind_options(settings),
            ledger_outage=settings.queue_ledger_outage,
            # Visibility extensions get a client of their own with short timeouts.
            keeper_queue=SqsQueue(
                settings.queue_url, sqs_client(connect_timeout=5, read_timeout=10, attempts=2)
            ),
            on_outcome=lambda o: (
                click.echo(outcome_line(o)) if not quiet or o.status == "failed" else None
            ),
            on_night_closed=lambda night: night_closed(settings, ledger, night, apps.ids()),
        ).serve(stop, once=once, grace=settings.queue_grace, poll=settings.queue_wait)
        exit_code[0] = report.exit_code
    ran = len(report.outcomes)
    if quiet and not report.exit_code:
        ctx.exit(0)
    click.echo(
        f"worker: {plural(ran, 'backup')} run, {plural(report.skipped, 'message')} for "
        f"backups done or held elsewhere, {plural(report.poison, 'poison message')} deleted"
        + (
            f", {plural(report.unknown, 'message')} for apps not in this registry handed back"
            if report.unknown
            else ""
        )
        + (f" (stopped: {stop.reason})" if stop.reason else "")
    )
    ctx.exit(report.exit_code)
