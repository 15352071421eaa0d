"""backupctl status."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, settings_from
from backupctl.cli.render import emit_json, human_size, table
from backupctl.durations import format_duration
from backupctl.errors import UsageError
from backupctl.redact import redact_text


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "app_id": row["app_id"],
        "backup_id": row["id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "duration_s": float(row["duration_s"]) if row["duration_s"] is not None else None,
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "artifact_uri": row["artifact_uri"],
        "error": redact_text(row["error"]) if row["error"] else None,
    }


def _status_word(row: dict[str, Any]) -> str:
    if row["status"] == "running" and row["lease_expired"]:
        return "running (lease expired)"
    return str(row["status"])


@cli.command("status")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    metavar="YYYY-MM-DD",
    help="Which night [default: the latest one run].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def status(ctx: click.Context, run_date: date | None, as_json: bool) -> None:
    """Show one night, app by app: status, attempts, duration, size and error.

    \b
    Example:
      backupctl status
      backupctl status --date 2026-11-28 --json
    """
    settings = settings_from(ctx)
    from backupctl.context import open_ledger

    ledger = open_ledger(settings)
    night_date = run_date or ledger.latest_night()
    if night_date is None:
        raise UsageError("no night has been run yet: run `backupctl run-nightly` first")
    night = ledger.get_night(night_date)
    rows = ledger.night_backups(night_date)
    if night is None:
        raise UsageError(f"no night recorded for {night_date}")
    if as_json:
        emit_json(
            "status",
            {
                "run_date": night_date,
                "night": {
                    k: night[k]
                    for k in (
                        "status",
                        "started_at",
                        "finished_at",
                        "planned",
                        "succeeded",
                        "failed",
                        "skipped",
                    )
                },
                "backups": [_row_json(row) for row in rows],
            },
        )
        return
    title = (
        f"night {night_date}: {night['status']}, {night['succeeded']}/{night['planned']} "
        f"succeeded, {night['failed']} failed"
        + (f", {night['skipped']} skipped" if night["skipped"] else "")
    )
    table(
        title,
        ["app", "status", "attempts", "duration", "size", "error"],
        [
            [
                row["app_id"],
                _status_word(row),
                str(row["attempts"]),
                format_duration(float(row["duration_s"])) if row["duration_s"] is not None else "-",
                human_size(row["size_bytes"]),
                redact_text(row["error"] or "")[:200],
            ]
            for row in rows
        ],
    )
