"""backupctl runs."""

from __future__ import annotations

import click

from backupctl.cli import cli
from backupctl.cli.common import settings_from
from backupctl.cli.render import emit_json, human_size, table
from backupctl.durations import format_duration


@cli.command("runs")
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=14,
    show_default=True,
    metavar="N",
    help="How many nights, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def runs(ctx: click.Context, last: int, as_json: bool) -> None:
    """One line per night: its status, counts by status, duration, bytes and warnings.

    drills: the night's backups restored by `backupctl drill` (and how many failed).

    A warning is a succeeded backup far smaller than usual ([run] min_size_ratio).

    Nights that no run-nightly recorded appear as `missed`.

    \b
    Example:
      backupctl runs --last 30
    """
    settings = settings_from(ctx)
    from backupctl.context import open_ledger

    nights = open_ledger(settings).list_nights(last)
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
