"""backupctl status."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, settings_from
from backupctl.cli.render import emit_json, human_size, judged_json, table
from backupctl.durations import format_duration
from backupctl.errors import UsageError
from backupctl.redact import redact_text
from backupctl.wording import one_line, plural, short_list

if TYPE_CHECKING:
    from backupctl.judged import Tally


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
        "warning": row["warning"],
        "hook_warning": redact_text(row["hook_warning"]) if row.get("hook_warning") else None,
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
    """Show one night, app by app: status, attempts, duration, size and error or warning.

    The night's drills (`backupctl drill`), if any, follow in a short section.

    A warning is a succeeded backup far smaller than usual ([run] min_size_ratio).

    The summary counts the enabled apps of the registry; backups of apps that left
    it (removed or disabled) are listed apart, as history.

    \b
    Example:
      backupctl status
      backupctl status --date 2026-11-28 --json
    """
    settings = settings_from(ctx)
    from backupctl.context import load_apps, open_ledger
    from backupctl.judged import load_judged, tally

    ledger = open_ledger(settings)
    night_date = run_date or ledger.latest_night()
    if night_date is None:
        raise UsageError("no night has been run yet: run `backupctl run-nightly` first")
    night = ledger.get_night(night_date)
    rows = ledger.night_backups(night_date)
    if night is None:
        raise UsageError(f"no night recorded for {night_date}")
    # status must work at 3 a.m. with a broken registry too: the planned apps stand in.
    judged = load_judged(lambda: load_apps(settings), lambda: rows)
    counts = tally(rows, judged)
    ours = [row for row in rows if judged.judges(str(row["app_id"]))]
    history = [row for row in rows if not judged.judges(str(row["app_id"]))]
    drills = ledger.night_drills(night_date)
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
                "backups": [
                    {
                        **_row_json(row),
                        "in_registry": judged.judges(str(row["app_id"]))
                        if judged.from_registry
                        else None,
                        "registry": judged.standing(str(row["app_id"])),
                    }
                    for row in rows
                ],
                "judged": judged_json(judged, counts),
                "drills": [
                    {
                        k: d[k]
                        for k in (
                            "app_id",
                            "backup_id",
                            "started_at",
                            "duration_s",
                            "status",
                            "restored",
                            "error",
                        )
                    }
                    for d in drills
                ],
            },
        )
        return
    if judged.registry_error:
        click.echo(
            f"the registry can't be read ({judged.registry_error}): "
            "showing the night's apps as planned",
            err=True,
        )
    title = _title(night_date, str(night["status"]), counts, _warned(ours))
    table(title, HEADERS, [_cells(r) for r in ours])
    if history:
        click.echo()
        table(
            f"no longer in the registry ({plural(len(history), 'backup')}, history, not judged):",
            [HEADERS[0], "registry", *HEADERS[1:]],
            [[_cells(r)[0], judged.standing(str(r["app_id"])), *_cells(r)[1:]] for r in history],
        )
    if drills:
        click.echo()
        failed = sum(1 for d in drills if d["status"] == "failed")
        table(
            f"drills of this night's backups ({plural(len(drills), 'drill')}, {failed} failed):",
            ["app", "backup", "drill", "duration", "restored", "error"],
            [_drill_cells(d) for d in drills],
        )


HEADERS = ["app", "status", "attempts", "duration", "size", "error"]


def _warned(rows: list[dict[str, Any]]) -> list[str]:
    """The apps whose succeeded backup carries a warning (far smaller than usual, or
    its after hook failed)."""
    return sorted(
        str(r["app_id"])
        for r in rows
        if r["status"] == "succeeded" and (r["warning"] or r.get("hook_warning"))
    )


def _title(night_date: date, night_status: str, counts: Tally, warned: list[str]) -> str:
    """The night in one line, counted over the judged apps."""
    title = (
        f"night {night_date}: {night_status}, {counts.succeeded}/{counts.planned} succeeded, "
        f"{counts.failed} failed" + (f", {counts.skipped} skipped" if counts.skipped else "")
    )
    if warned:
        title += f"; {plural(len(warned), 'warning')} ({short_list(warned)})"
    if counts.history:
        title += f"; {plural(len(counts.history), 'app')} no longer in the registry"
    if counts.not_in_night:
        missing = counts.not_in_night
        title += f"; {plural(len(missing), 'app')} of the registry not in this night"
        title += f" ({short_list(missing)})"
    return title


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        row["app_id"],
        _status_word(row),
        str(row["attempts"]),
        format_duration(float(row["duration_s"])) if row["duration_s"] is not None else "-",
        human_size(row["size_bytes"]),
        one_line(redact_text(_note(row)))[:200],
    ]


def _note(row: dict[str, Any]) -> str:
    """The last column: a backup's error, or the warning a succeeded one carries;
    then what its after hook said if it failed."""
    if row["status"] == "succeeded" and row["warning"]:
        note = f"warning: {row['warning']}"
    else:
        note = str(row["error"] or "")
    if row.get("hook_warning"):
        note = "; ".join(filter(None, [note, f"warning: {row['hook_warning']}"]))
    return note


def _drill_cells(d: dict[str, Any]) -> list[str]:
    restored = d["restored"] or {}
    shown = ", ".join(f"{k} {v}" for k, v in restored.items() if k != "note") or "-"
    return [
        str(d["app_id"]),
        str(d["backup_id"]),
        str(d["status"]),
        format_duration(float(d["duration_s"])),
        shown,
        one_line(redact_text(str(d["error"] or "")))[:200],
    ]
