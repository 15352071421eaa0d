"""backupctl check: Nagios-style exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, parse_duration_option, settings_from
from backupctl.cli.render import emit_json
from backupctl.durations import format_duration
from backupctl.errors import BackupctlError


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

    \b
    Exit codes and first line:
      0 OK        the night is complete
      1 WARNING   the night is still running inside its window
      2 CRITICAL  a backup failed, the night is missing or missed, a backup is stuck
                  running past its lease, or an enabled app had no success within --max-age
      3 UNKNOWN   the ledger (or the configuration) can't be read

    \b
    Example:
      backupctl check --max-age 30h
    """
    from backupctl.checks import UNKNOWN, evaluate, night_to_check

    try:
        settings = settings_from(ctx)
        from backupctl.context import load_apps, open_ledger

        apps = [app.id for app in load_apps(settings) if app.enabled]
        ledger = open_ledger(settings)
        now = ledger.now()
        if run_date is None:
            night, window_open = night_to_check(
                datetime.now(UTC), settings.run.window, settings.timezone
            )
        else:
            night, window_open = run_date, False
        result = evaluate(
            night=night,
            window_open=window_open,
            night_row=ledger.get_night(night),
            rows=ledger.night_backups(night),
            enabled_apps=apps,
            last_successes=ledger.last_successes(apps),
            now=now,
            max_age=max_age,
        )
    except BackupctlError as exc:
        message = str(exc).replace("\n", "; ")
        if as_json:
            emit_json("check", {"state": "UNKNOWN", "code": UNKNOWN, "summary": message})
        else:
            click.echo(f"UNKNOWN: {message}")
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
                    }
                    for a in result.apps
                ],
            },
        )
    else:
        click.echo(result.summary)
        for a in result.apps:
            age = (
                f"last success {format_duration((now - a.last_success).total_seconds())} ago"
                if a.last_success
                else "never succeeded"
            )
            detail = a.problem or a.note
            click.echo(f"  {a.app_id}: {a.status}, {age}" + (f" - {detail}" if detail else ""))
    ctx.exit(result.code)
