"""backupctl verify and backupctl prune."""

from __future__ import annotations

from datetime import date

import click

from backupctl.cli import cli
from backupctl.cli.common import parse_date, recorded, settings_from
from backupctl.cli.render import emit_json, human_size
from backupctl.errors import BackupctlError, UsageError


@cli.command("verify")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    metavar="YYYY-MM-DD",
    help="Verify this night's backups [default: the latest night].",
)
@click.option("--app", "app_id", metavar="APP", help="Only this app.")
@click.option("--all", "every", is_flag=True, help="Every succeeded backup of every night.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def verify(
    ctx: click.Context, run_date: date | None, app_id: str | None, every: bool, as_json: bool
) -> None:
    """Re-read stored backups and compare their sha256 and size with the ledger's.

    Exit 0 when every artifact is intact, 1 when one is missing or damaged.

    \b
    Example:
      backupctl verify
      backupctl verify --all --app shop
    """
    if every and run_date:
        raise click.UsageError("give --date or --all, not both")
    settings = settings_from(ctx)
    from backupctl.context import open_ledger, open_storages
    from backupctl.restore import artifact_from_row, verify_artifact

    ledger = open_ledger(settings)
    storages = open_storages(settings)
    night = None if every else run_date or ledger.latest_night()
    if night is None and not every:
        raise UsageError("no night has been run yet: nothing to verify")
    results = []
    with recorded(ledger, "verify", night) as exit_code:
        for row in ledger.succeeded_backups(night, app_id):
            artifact = artifact_from_row(row, f"backup {row['id']}")
            try:
                verify_artifact(storages, artifact)
                problem = None
            except BackupctlError as exc:
                problem = str(exc).removeprefix("restore failed: ")
            results.append((row, problem))
            if not as_json:
                click.echo(
                    f"{row['app_id']}  {row['run_date']}  {row['trigger']}  "
                    f"b{row['id']}  {human_size(row['size_bytes'])}  "
                    + ("ok" if problem is None else f"FAILED: {problem}")
                )
        bad = sum(1 for _, problem in results if problem)
        exit_code[0] = 1 if bad else 0
    if as_json:
        emit_json(
            "verify",
            {
                "run_date": night,
                "backups": [
                    {
                        "app_id": r["app_id"],
                        "run_date": r["run_date"],
                        "backup_id": r["id"],
                        "trigger": r["trigger"],
                        "artifact_uri": r["artifact_uri"],
                        "ok": p is None,
                        "problem": p,
                    }
                    for r, p in results
                ],
            },
        )
    else:
        click.echo(
            f"verified {len(results)} backups: " + (f"{bad} FAILED" if bad else "all intact")
        )
    ctx.exit(exit_code[0])


@cli.command("prune")
@click.option("--dry-run", is_flag=True, help="Say what would be pruned; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def prune(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Delete nightly backups that [retention] no longer keeps; their rows turn `pruned`.

    Per app it keeps the newest keep_daily nights and the newest night of each of
    the newest keep_weekly weeks and keep_monthly months (and always the newest).
    Ad-hoc backups are never pruned.

    \b
    Example:
      backupctl prune --dry-run
    """
    settings = settings_from(ctx)
    from backupctl.context import open_ledger, open_storages
    from backupctl.retention import check_policy
    from backupctl.retention import prune as prune_backups

    if (problem := check_policy(settings.retention)) is not None:
        raise UsageError(problem)
    ledger = open_ledger(settings)
    storages = open_storages(settings)
    with recorded(ledger, "prune", None) as exit_code:
        report = prune_backups(ledger, storages, settings.retention, dry_run=dry_run)
        exit_code[0] = 1 if report.errors else 0
    verb = "would prune" if dry_run else "pruned"
    if as_json:
        emit_json(
            "prune",
            {
                "dry_run": dry_run,
                "kept": report.kept,
                "errors": report.errors,
                "pruned": [
                    {"app_id": r["app_id"], "run_date": r["run_date"], "backup_id": r["id"]}
                    for r in report.pruned
                ],
            },
        )
    else:
        for row in report.pruned:
            click.echo(
                f"{verb} {row['app_id']} {row['run_date']} (b{row['id']}, "
                f"{human_size(row['size_bytes'])})"
            )
        click.echo(
            f"{verb} {len(report.pruned)} backups, kept {report.kept}"
            + (f"; {len(report.errors)} could not be deleted" if report.errors else "")
        )
    ctx.exit(exit_code[0])
