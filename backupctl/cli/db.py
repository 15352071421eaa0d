"""backupctl db upgrade."""

from __future__ import annotations

import click

from backupctl.cli import cli
from backupctl.cli.common import settings_from


@cli.group("db")
def db() -> None:
    """The ledger database."""


@db.command("upgrade")
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Apply pending ledger migrations (every command also does this at start).

    Migrations are numbered SQL files applied once each, in order, under an
    advisory lock, so several hosts upgrading at once is safe.

    \b
    Example:
      backupctl db upgrade
    """
    settings = settings_from(ctx)
    from backupctl.context import open_ledger

    open_ledger(settings)
    click.echo("ledger schema is up to date")
