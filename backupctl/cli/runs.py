"""backupctl runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from backupctl.cli import cli
from backupctl.cli.common import settings_from
from backupctl.cli.render import emit_json, human_size, table
from backupctl.durations import format_duration
from backupctl.errors import UsageError

if TYPE_CHECKING:
    from backupctl.ledger import Ledger

# Nights shown by default: as lines, and as a grid (then as many as fit the terminal).
LAST = 14
GRID_LAST = 60


@cli.command("runs")
@click.option(
    "--last",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"How many nights, newest first [default: {LAST}; {GRID_LAST} with --grid].",
)
@click.option(
    "--grid",
    is_flag=True,
    help="Apps as rows, nights as columns (the newest nights that fit the terminal).",
)
@click.option(
    "--app",
    "pattern",
    metavar="PATTERN",
    help="With --grid: only the apps whose id matches this shell-style glob (shop-*).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def runs(
    ctx: click.Context, last: int | None, grid: bool, pattern: str | None, as_json: bool
) -> None:
    """One line per night: its status, counts by status, duration, bytes and warnings.

    drills: the night's backups restored by `backupctl drill` (and how many failed).

    A warning is a succeeded backup far smaller than usual ([run] min_size_ratio);
    the grid's W also marks one whose after hook failed.

    Nights that no run-nightly recorded appear as `missed`.

    --grid shows apps as rows and nights as columns, apps with trouble (a failure,
    a warning) first: coloured cells on a terminal, one character per cell and a
    legend when piped or with NO_COLOR.

    \b
    Example:
      backupctl runs --last 30
      backupctl runs --grid --app 'shop-*'
    """
    if pattern is not None and not grid:
        raise UsageError("--app needs --grid: `backupctl runs --grid --app PATTERN`")
    settings = settings_from(ctx)
    from backupctl.context import open_ledger

    if grid:
        _grid(open_ledger(settings), last or GRID_LAST, pattern, as_json)
        return
    nights = open_ledger(settings).list_nights(last or LAST)
    if as_json:
        emit_json(
            "runs",
            {
                "nights": [
                    {
                        **{
                            k: n[k]
                            for k in (
                                "run_date",
                                "status",
                                "started_at",
                                "finished_at",
                                "planned",
                                "succeeded",
                                "failed",
                                "waiting",
                                "running",
                                "pruned",
                                "skipped",
                                "bytes",
                                "warnings",
                                "drills",
                                "drills_failed",
                            )
                        },
                        "duration_s": float(n["duration_s"])
                        if n["duration_s"] is not None
                        else None,
                    }
                    for n in nights
                ]
            },
        )
        return
    if not nights:
        click.echo("no night recorded yet: run `backupctl run-nightly` first")
        return
    table(
        None,
        [
            "night",
            "status",
            "apps",
            "ok",
            "failed",
            "skipped",
            "waiting",
            "running",
            "duration",
            "bytes",
            "warnings",
            "drills",
        ],
        [
            [
                str(n["run_date"]),
                str(n["status"]),
                str(n["planned"]),
                str(n["succeeded"]),
                str(n["failed"]),
                str(n["skipped"]),
                str(n["waiting"]),
                str(n["running"]),
                format_duration(float(n["duration_s"])) if n["duration_s"] is not None else "-",
                human_size(int(n["bytes"])) if n["planned"] else "-",
                str(n["warnings"]),
                _drills(n),
            ]
            for n in nights
        ],
    )


def _drills(night: dict[str, object]) -> str:
    """'3', or '3 (1 failed)'."""
    failed = night["drills_failed"]
    return f"{night['drills']}" + (f" ({failed} failed)" if failed else "")


def _grid(ledger: Ledger, last: int, pattern: str | None, as_json: bool) -> None:
    """runs --grid: read only the nights that can be shown, then print them."""
    from backupctl.cli.grid_render import grid_json, print_grid, terminal_width
    from backupctl.grid import load_grid, no_match, widest_fit

    # A terminal shows only states, and no more nights than fit its width: read no more.
    if as_json:
        grid = load_grid(ledger, last, pattern)
    else:
        grid = load_grid(ledger, min(last, widest_fit(terminal_width())), pattern, detail=False)
    if pattern is not None and grid.nights and not grid.apps:
        raise UsageError(no_match("runs --grid", pattern, ledger, grid))
    if as_json:
        emit_json("runs-grid", grid_json(grid))
        return
    if not grid.nights:
        click.echo("no night recorded yet: run `backupctl run-nightly` first")
        return
    print_grid(grid, last)
