"""backupctl drill."""

from __future__ import annotations

import signal
from datetime import date
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from backupctl.cli import cli
from backupctl.cli.common import IDENTITY, identities_from, parse_date, recorded, settings_from
from backupctl.errors import BackupctlError, UsageError

if TYPE_CHECKING:
    from backupctl.config import Settings
    from backupctl.drill import DrillResult
    from backupctl.encryption import Identities
    from backupctl.ledger import Ledger
    from backupctl.registry import App


@cli.command("drill")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    metavar="YYYY-MM-DD",
    help="Drill the backups of this night [default: each app's latest succeeded one].",
)
@click.option(
    "--app",
    "app_ids",
    multiple=True,
    metavar="APP",
    help="Drill this app (repeatable) [default: every enabled app of the registry].",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    metavar="N",
    help="Drill N apps, at random among those not drilled for longest.",
)
@IDENTITY
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def drill_cmd(
    ctx: click.Context,
    run_date: date | None,
    app_ids: tuple[str, ...],
    sample: int | None,
    identity: str | None,
    as_json: bool,
) -> None:
    """Restore backups into scratch targets, check them and record the verdict.

    Each chosen app's latest succeeded nightly backup (of --date's night when given)
    is restored: postgres into a new database backupctl_drill_<backup id> on [drill]
    postgres_url (default: the embedded Postgres), dropped afterwards; mysql the same
    on [drill] mysql_url (which a mysql app's drill needs); files into a
    temporary folder; command into a temporary file, fed to the app's drill_argv
    program when it has one; sqlite into a temporary file, checked with PRAGMA
    integrity_check. A drill passes when the restore succeeded and holds what the
    backup's manifest recorded (its tables; its files and bytes; its bytes; its
    tables, their rows and its sha256). Exit 0 when every drill passed, 1 when one
    failed, 2 for a usage error.

    \b
    Examples:
      backupctl drill --sample 3
      backupctl drill --app shop --date 2026-11-28 --json
    """
    if sample is not None and app_ids:
        raise click.UsageError("give --app A or --sample N, not both")
    settings = settings_from(ctx)
    from backupctl.context import load_apps, open_ledger, open_storages

    apps = load_apps(settings)
    ledger = open_ledger(settings)
    with recorded(ledger, "drill", run_date) as exit_code:
        chosen = _choose(ledger, apps, run_date, app_ids, sample)
        storages = open_storages(settings)
        results = _run(settings, ledger, chosen, storages, as_json, identities_from(identity))
        exit_code[0] = 0 if all(r.passed for r in results) else 1
        _refresh_metrics(settings, ledger, apps)
    _render(results, as_json)
    ctx.exit(exit_code[0])


def _choose(
    ledger: Ledger,
    apps: list[App],
    run_date: date | None,
    app_ids: tuple[str, ...],
    sample: int | None,
) -> list[tuple[App, dict[str, Any]]]:
    """The apps to drill, each with its backup row; UsageError when there is none."""
    import random

    from backupctl.drill import drill_order

    if run_date is not None and ledger.get_night(run_date) is None:
        span = ledger.night_range()
        known = f" (nights recorded: {span[0]} to {span[1]})" if span else ""
        raise UsageError(f"night {run_date} is not recorded{known}")
    by_id = {app.id: app for app in apps}
    if app_ids:
        unknown = sorted(set(app_ids) - set(by_id))
        if unknown:
            raise UsageError(f"unknown app {', '.join(unknown)}: not in the registry")
        chosen = [by_id[a] for a in dict.fromkeys(app_ids)]
    else:
        chosen = sorted((a for a in apps if a.enabled), key=lambda a: a.id)
        if not chosen:
            raise UsageError("the registry lists no enabled app to drill")
    if sample is not None:
        latest = ledger.latest_drills([a.id for a in chosen])
        order = drill_order([a.id for a in chosen], latest, random.SystemRandom())
        chosen = [by_id[a] for a in order]
    found: list[tuple[App, dict[str, Any]]] = []
    lacking: list[str] = []
    for app in chosen:
        if sample is not None and len(found) >= sample:
            break
        row = ledger.drillable_backup(app.id, run_date)
        if row is None:
            lacking.append(app.id)
        else:
            found.append((app, row))
    night = f" of night {run_date}" if run_date else ""
    if app_ids and lacking:
        raise UsageError(f"no succeeded nightly backup{night} to drill for {', '.join(lacking)}")
    if not found:
        raise UsageError(f"no succeeded nightly backup{night} to drill")
    for app_id in lacking:
        click.echo(f"{app_id}: no succeeded nightly backup{night} to drill", err=True)
    return sorted(found, key=lambda pair: pair[0].id)


def _run(
    settings: Settings,
    ledger: Ledger,
    chosen: list[tuple[App, dict[str, Any]]],
    storages: Any,
    as_json: bool,
    identities: Identities | None,
) -> list[DrillResult]:
    from backupctl.context import kind_options
    from backupctl.drill import DrillStopped, DrillTargets, drill

    targets = DrillTargets(
        server_url=lambda kind: _scratch_server(settings, kind),
        kind_options=kind_options(settings),
        timeout=float(settings.values["drill.timeout"]),
        identities=identities,
    )
    stopping: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Raised once, in the main thread: every `finally` on the way drops its scratch
        # target; a second signal must not cut that clean-up short.
        if not stopping:
            stopping.append(signal.Signals(signum).name)
            raise DrillStopped(f"received {stopping[0]}")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    results: list[DrillResult] = []
    try:
        for app, row in chosen:
            result = drill(ledger, storages, app, row, targets)
            results.append(result)
            if not as_json:
                click.echo(_line(result))
            if stopping:  # the signal's DrillStopped gave way to a clean-up error
                raise DrillStopped(f"received {stopping[0]}")
    except DrillStopped as exc:
        raise DrillsStopped(str(exc)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return results


class DrillsStopped(BackupctlError):
    """The drills were stopped by a signal (exit 1)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"drill stopped ({why}); its scratch target was removed")


def _refresh_metrics(settings: Settings, ledger: Ledger, apps: list[App]) -> None:
    """Rewrite the metrics file (if [monitoring] metrics_file is set) for the latest
    night, so the drill gauges show this drill."""
    if not settings.metrics_file:
        return
    from backupctl.notify import write_night_metrics

    night = ledger.latest_night()
    if night is None:
        return
    row = ledger.get_night(night)
    enabled = [a.id for a in apps if a.enabled]
    status = str(row["status"]) if row else None
    write_night_metrics(settings, ledger, night, ledger.night_backups(night), status, enabled)


def _scratch_server(settings: Settings, kind: str) -> str:
    """[drill] <kind>_url; for postgres, when it is empty, the embedded Postgres
    (started on first use)."""
    url = settings.values.get(f"drill.{kind}_url")
    if url:
        return str(url)
    if kind != "postgres":
        raise UsageError(f"[drill] {kind}_url is not set: a {kind} drill needs a scratch server")
    from backupctl.context import state_dir
    from backupctl.ledger.embedded import embedded_database_url

    return embedded_database_url(state_dir(settings))


def _line(r: DrillResult) -> str:
    from backupctl.wording import human_size

    parts = []
    if "tables" in r.restored:
        parts.append(f"{r.restored['tables']} tables, {r.restored['rows']} rows")
    elif "files" in r.restored:
        parts.append(f"{r.restored['files']} files, {human_size(r.restored['bytes'])}")
    elif "bytes" in r.restored:
        parts.append(human_size(r.restored["bytes"]))
    if r.restored.get("note"):
        parts.append(str(r.restored["note"]))
    if r.error:
        parts.append(r.error)
    detail = f": {'; '.join(parts)}" if parts else ""
    return (
        f"{r.app_id} (backup {r.backup_id}, night {r.run_date}): {r.status} "
        f"in {r.duration_s:.1f}s{detail}"
    )


def _render(results: list[DrillResult], as_json: bool) -> None:
    from backupctl.wording import plural

    if as_json:
        from backupctl.cli.render import emit_json

        emit_json("drill", {"drills": [r.as_json() for r in results]})
        return
    failed = sum(1 for r in results if not r.passed)
    summary = f"{plural(len(results), 'drill')}: {len(results) - failed} passed, {failed} failed"
    click.echo(summary)
