"""backupctl restore."""

from __future__ import annotations

import os
from datetime import date
from typing import TYPE_CHECKING

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, recorded, settings_from
from backupctl.errors import UsageError

if TYPE_CHECKING:
    from backupctl.config import Settings
    from backupctl.ledger import Ledger


def _target(value: str) -> str:
    # env:NAME keeps a DSN with a password off the command line (and out of `ps`).
    if value.startswith("env:"):
        name = value[4:]
        if not os.environ.get(name):
            raise UsageError(f"--to {value}: environment variable {name} is not set")
        return os.environ[name]
    return value


@cli.command("restore")
@click.argument("app_id", metavar="APP")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    metavar="YYYY-MM-DD",
    help="The night whose backup to restore.",
)
@click.option(
    "--adhoc",
    "backup_id",
    type=int,
    metavar="ID",
    help="Restore this ad-hoc backup (its id) instead of a night's.",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="TARGET",
    help="postgres: a DSN (or env:VAR holding it); files: a new or empty "
    "folder; command: a new file, or - for standard output.",
)
@click.option(
    "--clean",
    is_flag=True,
    help="postgres: drop and recreate objects in a database that is not empty.",
)
@click.pass_context
def restore(
    ctx: click.Context,
    app_id: str,
    run_date: date | None,
    backup_id: int | None,
    target: str,
    clean: bool,
) -> None:
    """Restore one app's backup, checking its sha256 before and while it streams.

    A damaged artifact (checksum mismatch) is refused: exit 1, nothing restored.

    \b
    Examples:
      backupctl restore shop --date 2026-11-28 --to postgresql://localhost/shop_restored
      backupctl restore shop --date 2026-11-28 --to env:RESTORE_DSN --clean
      backupctl restore wiki-uploads --date 2026-11-28 --to /srv/restore/wiki
      backupctl restore crm --adhoc 4711 --to -
    """
    if (run_date is None) == (backup_id is None):
        raise click.UsageError("give exactly one of --date D or --adhoc ID")
    settings = settings_from(ctx)
    from backupctl.context import open_ledger

    ledger = open_ledger(settings)
    with recorded(ledger, "restore", run_date) as exit_code:
        message = _restore(ledger, settings, app_id, run_date, backup_id, _target(target), clean)
        exit_code[0] = 0
    click.echo(message, err=target == "-")


def _restore(
    ledger: Ledger,
    settings: Settings,
    app_id: str,
    run_date: date | None,
    backup_id: int | None,
    target: str,
    clean: bool,
) -> str:
    from backupctl.context import open_storages
    from backupctl.restore import artifact_from_row, restore_artifact

    if backup_id is not None:
        row = ledger.backup_by_id(backup_id)
        if row is not None and (row["app_id"] != app_id or row["trigger"] != "adhoc"):
            row = None
        artifact = artifact_from_row(row, f"app {app_id!r}, ad-hoc backup {backup_id}")
    else:
        assert run_date is not None
        row = ledger.nightly_artifact(app_id, run_date)
        artifact = artifact_from_row(row, f"app {app_id!r} on {run_date}")
    return restore_artifact(
        open_storages(settings), artifact, target, clean=clean, pg_bin_dir=settings.pg_bin_dir
    )
