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
    """Apply pending ledger migrations (every command also does this at start)."""
    settings = settings_from(ctx)
    from backupctl.context import open_ledger

    open_ledger(settings)
    click.echo("ledger schema is up to date")
