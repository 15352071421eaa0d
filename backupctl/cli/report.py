"""backupctl report."""

from __future__ import annotations

from pathlib import Path

import click

from backupctl.cli import cli
from backupctl.cli.common import settings_from, terse
from backupctl.errors import BackupctlError, UsageError

# The nights a page shows by default, and the drills it lists at most.
LAST = 30
DRILLS = 50


@cli.command("report")
@click.option(
    "--html",
    "html_file",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page here, in one step (a reader never sees half a page).",
)
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=LAST,
    show_default=True,
    metavar="N",
    help="How many nights, the newest.",
)
@click.option(
    "--app",
    "pattern",
    metavar="PATTERN",
    help="Only the apps whose id matches this shell-style glob (shop-*).",
)
@click.pass_context
def report(ctx: click.Context, html_file: Path, last: int, pattern: str | None) -> None:
    """Write one HTML page of the latest nights: summary, grid, sizes, failures, drills.

    The page is self-contained (inline CSS and SVG, no script, nothing fetched from
    elsewhere), readable on a phone and printable: the latest night's summary, the
    latest failures and warnings with their errors (passwords masked), apps as rows
    and nights as columns with a tooltip per cell, each app's size over the nights,
    and the latest drills. A cron line can write it into a web root: off a
    terminal it prints nothing unless it fails (or -v).

    \b
    Example:
      backupctl report --html /var/www/backups/index.html
      backupctl report --html shop.html --last 90 --app 'shop-*'
    """
    if not html_file.parent.is_dir():
        raise UsageError(
            f"report: the folder {html_file.parent} does not exist: create it, "
            "or write the page somewhere else"
        )
    settings = settings_from(ctx)
    from datetime import UTC, datetime

    from backupctl.context import open_ledger
    from backupctl.grid import load_grid, no_match
    from backupctl.report import write_report

    ledger = open_ledger(settings)
    grid = load_grid(ledger, last, pattern, notes=True, drills=DRILLS)
    if pattern is not None and grid.nights and not grid.apps:
        raise UsageError(no_match("report", pattern, ledger, grid))
    try:
        size = write_report(html_file, grid, datetime.now(UTC), pattern)
    except OSError as exc:  # a full disk, an I/O error: a failure, not a usage error
        raise BackupctlError(f"report: can't write {html_file}: {exc.strerror or exc}") from None
    if not terse(ctx):  # a cron line that did its work prints nothing
        click.echo(
            f"wrote {html_file}: {len(grid.apps)} apps, {len(grid.nights)} nights, {size} bytes"
        )
