"""backupctl backup APP."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from backupctl.cli import cli
from backupctl.cli.common import recorded, settings_from, stop_on_signals
from backupctl.cli.render import emit_json, outcome_line
from backupctl.errors import UsageError


@cli.command("backup")
@click.argument("app_id", metavar="APP")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def backup(ctx: click.Context, app_id: str, as_json: bool) -> None:
    """Back up one app now, ad hoc: recorded as `adhoc`, apart from the nightly backups.

    It never takes or blocks the app's nightly backup, and it does not count for
    the night. Exit 0 when it succeeded, 1 when it failed.

    \b
    Example:
      backupctl backup shop
      backupctl restore shop --adhoc ID --to ...   # ID as printed
    """
    settings = settings_from(ctx)
    from backupctl.adhoc import backup_now
    from backupctl.context import kind_options, load_apps, open_ledger, open_registry, open_storages
    from backupctl.executor import new_owner
    from backupctl.wording import short_list

    source = open_registry(settings)
    apps = {app.id: app for app in load_apps(settings, source)}
    if app_id not in apps:
        known = short_list(sorted(apps)) or "none"
        raise UsageError(f"no app {app_id!r} in the registry {source.label} (apps: {known})")
    storages = open_storages(settings)
    ledger = open_ledger(settings, workers=1)
    today = datetime.now(UTC).astimezone(settings.timezone).date()
    stop = stop_on_signals()
    with recorded(ledger, "backup", today) as exit_code:
        outcome = backup_now(
            app=apps[app_id],
            registry=list(apps.values()),
            today=today,
            ledger=ledger,
            storages=storages,
            run=settings.run,
            owner=new_owner(),
            stop=stop,
            kind_options=kind_options(settings),
        )
        exit_code[0] = 0 if outcome.status == "succeeded" else 1
    if as_json:
        emit_json(
            "backup",
            {
                "app_id": app_id,
                "backup_id": outcome.claim.id,
                "trigger": "adhoc",
                "status": outcome.status,
                "seconds": round(outcome.seconds, 3),
                "size_bytes": outcome.size,
                "sha256": outcome.sha256,
                "artifact_uri": outcome.uri,
                "error": outcome.error,
            },
        )
    else:
        click.echo(f"ad-hoc backup {outcome.claim.id}: " + outcome_line(outcome))
    ctx.exit(exit_code[0])
