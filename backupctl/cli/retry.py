"""backupctl retry."""

from __future__ import annotations

from datetime import date, timedelta

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, recorded, settings_from, stop_on_signals
from backupctl.cli.render import outcome_line
from backupctl.wording import short_list


@cli.command("retry")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    required=True,
    metavar="YYYY-MM-DD",
    help="The night whose failed backups to retry.",
)
@click.option("--app", "app_id", metavar="APP", help="Only this app.")
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Retry although the registry lost more than [run] max_shrink of the night's apps.",
)
@click.pass_context
def retry(ctx: click.Context, run_date: date, app_id: str | None, allow_shrink: bool) -> None:
    """Give a night's failed backups another round of attempts and run them now.

    Each failed backup gets [run] max_attempts more attempts. In direct mode they
    run now, here; in enqueue mode they are sent to the workers. The night's window
    no longer applies to it. Backups of apps no longer in the registry are skipped,
    so a registry that lost more than [run] max_shrink of the night's apps is
    refused (exit 2) unless --allow-shrink.

    When the round ends, [monitoring] notify hears of what the night has not told
    yet (in enqueue mode, the worker that finishes the round's last backup tells).

    A night not in the ledger, a missed night (run it with run-nightly --date),
    or an --app with no backup in the night is exit 2. A night with no failed
    backup is exit 0: nothing to retry.

    \b
    Example:
      backupctl retry --date 2026-11-28
      backupctl retry --date 2026-11-28 --app shop
    """
    settings = settings_from(ctx)
    from backupctl.context import (
        kind_options,
        load_apps,
        open_ledger,
        open_storages,
        registry_source,
    )
    from backupctl.executor import new_owner
    from backupctl.registry.guard import check_night_registry
    from backupctl.retry import check_retry_target, nothing_to_retry, retrying_line

    apps = load_apps(settings)
    storages = open_storages(settings)
    ledger = open_ledger(settings, workers=settings.run.parallel)
    check_retry_target(ledger, run_date, app_id)
    # Compared with the night itself: the latest planned night before the day after.
    check_night_registry(
        apps,
        registry_source(settings),
        ledger,
        run_date + timedelta(days=1),
        max_shrink=settings.run.max_shrink,
        allow_shrink=allow_shrink,
    )
    with recorded(ledger, "retry", run_date) as exit_code:
        granted = ledger.grant_retry(run_date, app_id)
        if not granted:
            click.echo(nothing_to_retry(ledger, run_date, app_id))
            exit_code[0] = 0
            ctx.exit(0)
        click.echo(retrying_line(run_date, granted))
        if settings.run.mode == "enqueue":
            from backupctl.enqueue import enqueue_night
            from backupctl.queue import SqsQueue

            assert settings.queue_url is not None
            sent = enqueue_night(
                run_date=run_date,
                apps=apps,
                ledger=ledger,
                queue=SqsQueue(settings.queue_url),
                run=settings.run,
                resend_after=settings.queue_resend_after,
                storages=storages,
                only_app=app_id,
                plan=False,
            )
            click.echo(
                f"sent {sent.sent} to the queue; `backupctl status --date {run_date}` "
                "shows when the workers are done"
            )
            exit_code[0] = 1 if sent.rejected else 0
        else:
            from backupctl.nightly import run_night

            report = run_night(
                run_date=run_date,
                apps=apps,
                ledger=ledger,
                storages=storages,
                run=settings.run,
                owner=new_owner(),
                stop=stop_on_signals(),
                on_outcome=lambda o: click.echo(outcome_line(o)),
                kind_options=kind_options(settings),
                only_app=app_id,
                plan=False,
            )
            still = [
                str(r["app_id"])
                for r in report.rows
                if r["status"] == "failed" and (app_id is None or r["app_id"] == app_id)
            ]
            click.echo(
                f"night {run_date}: "
                + (
                    f"still failed: {short_list(still, limit=10)}"
                    if still
                    else "every retried backup succeeded"
                )
            )
            exit_code[0] = 1 if still else 0
    if settings.run.mode != "enqueue":  # in enqueue mode the worker that ends the round tells
        from backupctl.notify import notify_night

        notify_night(settings, ledger, run_date)
    ctx.exit(exit_code[0])
