"""backupctl check: Nagios-style exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, parse_duration_option, settings_from
from backupctl.cli.render import emit_json, judged_json
from backupctl.durations import format_duration
from backupctl.errors import BackupctlError
from backupctl.redact import redact_text

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backupctl.checks import AppVerdict
    from backupctl.config import Settings
    from backupctl.ledger import Ledger


@cli.command("check")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    metavar="YYYY-MM-DD",
    help="Judge this night [default: tonight's while its window is open, else the "
    "latest night whose window has closed].",
)
@click.option(
    "--max-age",
    default="48h",
    show_default=True,
    callback=parse_duration_option,
    metavar="DURATION",
    help="CRITICAL when an enabled app's latest success is older.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def check(ctx: click.Context, run_date: date | None, max_age: float, as_json: bool) -> None:
    """Monitoring: is the night complete? A dead-man's switch for Nagios, Icinga, cron.

    It judges the enabled apps of the registry; rows of apps that left it (removed
    or disabled) are shown as history and change nothing. If the registry can't be
    read, the apps the night planned are judged instead, and the state is at least
    WARNING.

    \b
    Exit codes and first line:
      0 OK        the night is complete
      1 WARNING   the night is still running inside its window, the registry
                  can't be read, or a backup is far smaller than usual ([run]
                  min_size_ratio)
      2 CRITICAL  a backup failed, the night is missing or missed, a backup is stuck
                  running past its lease, an enabled app had no success within
                  --max-age, or (with [drill] max_age) no passed drill within it
      3 UNKNOWN   the ledger or the configuration can't be read

    Without --date, [monitoring] notify hears of the latest night whose window has
    closed, if it was missed, or failed or is not done and nobody told yet (each
    once, however often check runs); with a whole-day window, that is yesterday.
    Nights a later run recorded as missed are told too, a week back.

    \b
    Example:
      backupctl check --max-age 30h
    """
    from backupctl.checks import UNKNOWN, evaluate, night_to_check, perfdata
    from backupctl.nagios import plugin_output

    try:
        settings = settings_from(ctx)
        from backupctl.context import load_apps, open_ledger
        from backupctl.judged import load_judged

        ledger = open_ledger(settings)
        now = ledger.now()
        if run_date is None:
            night, window_open = night_to_check(
                datetime.now(UTC), settings.run.window, settings.timezone
            )
        else:
            night, window_open = run_date, False
        rows = ledger.night_backups(night)
        # An unreadable registry: judged from the ledger (the night's planned apps).
        judged = load_judged(lambda: load_apps(settings), lambda: rows)
        shown = sorted(judged.apps | {str(row["app_id"]) for row in rows})
        result = evaluate(
            night=night,
            window_open=window_open,
            night_row=ledger.get_night(night),
            rows=rows,
            judged=judged,
            last_successes=ledger.last_successes(shown),
            now=now,
            max_age=max_age,
            **_drills(settings, ledger, judged.apps),
        )
        if run_date is None:
            from backupctl.notify import notify_closed_nights

            notify_closed_nights(settings, ledger, night, window_open=window_open)
    except BackupctlError as exc:
        message = str(exc).replace("\n", "; ")
        if as_json:
            emit_json("check", {"state": "UNKNOWN", "code": UNKNOWN, "summary": message})
        else:
            click.echo(plugin_output(f"UNKNOWN: {message}", [], []))
        ctx.exit(UNKNOWN)
    if as_json:
        emit_json(
            "check",
            {
                "state": result.state,
                "code": result.code,
                "night": night,
                "summary": result.summary,
                "problems": result.problems,
                "apps": [
                    {
                        "app_id": a.app_id,
                        "status": a.status,
                        "attempts": a.attempts,
                        "last_success": a.last_success,
                        "problem": a.problem,
                        "note": a.note,
                        "judged": a.judged,
                        "registry": a.registry,
                        "history": a.history,
                        "warning": a.warning,
                    }
                    for a in result.apps
                ],
                "judged": judged_json(judged, result.tally),
                "age_s": result.age,
            },
        )
    else:
        lines = [_app_line(a, now) for a in result.apps]
        click.echo(plugin_output(result.summary, perfdata(result), lines))
    ctx.exit(result.code)


def _drills(settings: Settings, ledger: Ledger, app_ids: Iterable[str]) -> dict[str, Any]:
    """evaluate's drill arguments: none unless [drill] max_age is set."""
    max_age = settings.values.get("drill.max_age")
    if max_age is None:
        return {}
    return {"drills": ledger.latest_drills(list(app_ids)), "drill_max_age": float(max_age)}


def _app_line(a: AppVerdict, now: datetime) -> str:
    """One app's line: its status, latest success and problem; or why it is history."""
    from backupctl.nagios import clean

    age = (
        f"last success {format_duration((now - a.last_success).total_seconds())} ago"
        if a.last_success
        else None
    )
    if a.judged:
        parts = [a.status, age or "never succeeded"]
    else:
        parts = [a.status, f"{a.history}, not judged", *([age] if age else [])]
    line = f"  {a.app_id}: " + ", ".join(parts)
    detail = a.problem or (a.warning and f"warning: {a.warning}") or a.note
    return line + (f" - {clean(redact_text(detail))}" if detail else "")
