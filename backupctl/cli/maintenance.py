"""backupctl verify and backupctl prune."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import click

from backupctl.cli import cli
from backupctl.cli.common import (
    IDENTITY,
    identities_from,
    parse_date,
    parse_duration_option,
    recorded,
    settings_from,
)
from backupctl.cli.render import emit_json, human_size
from backupctl.errors import BackupctlError, UsageError
from backupctl.wording import plural

if TYPE_CHECKING:
    from backupctl.config import Settings
    from backupctl.ledger import Ledger
    from backupctl.orphans import Orphan, OrphanReport


def _sweep(ledger: Ledger, settings: Settings, min_age: float, *, delete: bool) -> OrphanReport:
    """Find the orphans in the configured storage and every app's own; remove them
    when `delete`."""
    from backupctl.context import load_apps, open_storages
    from backupctl.orphans import find_orphans, remove_orphans

    storages = open_storages(settings).all_of([app.storage for app in load_apps(settings)])
    report = find_orphans(ledger, storages, datetime.now(UTC), timedelta(seconds=min_age))
    if delete:
        remove_orphans(ledger, report.found, report)
    return report


def _orphan_json(orphan: Orphan) -> dict[str, object]:
    return {"uri": orphan.uri, "modified": orphan.entry.modified}


OLDER_THAN = click.option(
    "--older-than",
    default="24h",
    show_default=True,
    callback=parse_duration_option,
    metavar="DURATION",
    help="Only files at least this old count as orphans (younger ones may be in flight).",
)


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
@click.option(
    "--orphans",
    is_flag=True,
    help="Instead: list what storage holds that no ledger row points to.",
)
@click.option("--delete", is_flag=True, help="With --orphans: remove them.")
@click.option(
    "--deep",
    is_flag=True,
    help="Also decompress (and decrypt, with --identity) each whole artifact: it reads back.",
)
@IDENTITY
@OLDER_THAN
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def verify(
    ctx: click.Context,
    run_date: date | None,
    app_id: str | None,
    every: bool,
    orphans: bool,
    delete: bool,
    deep: bool,
    identity: str | None,
    older_than: float,
    as_json: bool,
) -> None:
    """Re-read stored backups and compare their sha256 and size with the ledger's.

    Exit 0 when every artifact is intact, 1 when one is missing or damaged. That
    needs no key, encrypted or not. With --deep each artifact is also decompressed
    to its end, and an encrypted one decrypted first: that needs --identity (exit 2
    without it when one is encrypted).

    With --orphans it checks the other direction: artifacts, temporary files and
    unfinished uploads in storage (the configured one and every app's own) that no
    succeeded backup points to and that are older than --older-than. Exit 1 when
    there are any; with --delete they are removed (exit 1 only if one could not be).

    \b
    Example:
      backupctl verify
      backupctl verify --all --app shop
      backupctl verify --deep --identity ~/backup-key.txt
      backupctl verify --orphans --delete
    """
    if every and run_date:
        raise click.UsageError("give --date or --all, not both")
    if delete and not orphans:
        raise click.UsageError("--delete only goes with --orphans")
    if orphans and (every or run_date or app_id or deep):
        raise click.UsageError(
            "--orphans looks at all of storage: no --date, --all, --app or --deep"
        )
    if identity and not deep:
        raise click.UsageError("--identity goes with --deep (plain verify needs no key)")
    settings = settings_from(ctx)
    if orphans:
        _verify_orphans(ctx, settings, older_than, delete=delete, as_json=as_json)
        return
    from backupctl.context import open_ledger, open_storages
    from backupctl.restore import artifact_from_row, need_identity, verify_artifact, verify_deep

    identities = identities_from(identity) if deep else None
    ledger = open_ledger(settings)
    storages = open_storages(settings)
    night = None if every else run_date or ledger.latest_night()
    if night is None and not every:
        raise UsageError("no night has been run yet: nothing to verify")
    results = []
    with recorded(ledger, "verify" + (" --deep" if deep else ""), night) as exit_code:
        rows = ledger.succeeded_backups(night, app_id)
        artifacts = [artifact_from_row(row, f"backup {row['id']}") for row in rows]
        if deep:  # an encrypted backup and no key: say so before reading anything
            for artifact in artifacts:
                need_identity(artifact, identities)
        for row, artifact in zip(rows, artifacts, strict=True):
            try:
                if deep:
                    verify_deep(storages, artifact, identities)
                else:
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
                        "encrypted": str(r["artifact_uri"]).endswith(".age"),
                        "ok": p is None,
                        "problem": p,
                    }
                    for r, p in results
                ],
            },
        )
    else:
        verdict = f"{bad} FAILED" if bad else "all intact"
        click.echo(f"verified {plural(len(results), 'backup')}: {verdict}")
    ctx.exit(exit_code[0])


def _verify_orphans(
    ctx: click.Context, settings: Settings, older_than: float, *, delete: bool, as_json: bool
) -> None:
    from backupctl.context import open_ledger

    ledger = open_ledger(settings)
    with recorded(ledger, "verify --orphans", None) as exit_code:
        report = _sweep(ledger, settings, older_than, delete=delete)
        left = report.errors or report.foreign or (report.found and not delete)
        exit_code[0] = 1 if left else 0
    if as_json:
        emit_json(
            "verify",
            {
                "orphans": [_orphan_json(o) for o in report.found],
                "not_in_this_ledger": [_orphan_json(o) for o in report.foreign],
                "removed": [o.uri for o in report.removed],
                "locked": [{"uri": o.uri, "lock": lock} for o, lock in report.locked],
                "errors": report.errors,
            },
        )
    else:
        locks = {id(o): lock for o, lock in report.locked}
        for orphan in report.found:
            verb = "removed" if orphan in report.removed else "orphan"
            if id(orphan) in locks:
                verb = f"kept, {locks[id(orphan)]}"
            click.echo(f"{verb}: {orphan.uri} (written {orphan.entry.modified:%Y-%m-%d %H:%M})")
        for orphan in report.foreign:
            click.echo(
                f"not in this ledger (left alone): {orphan.uri} "
                f"(written {orphan.entry.modified:%Y-%m-%d %H:%M})"
            )
        if report.foreign:
            click.echo(
                f"{plural(len(report.foreign), 'file')} naming backups this ledger has no row for "
                "(another ledger sharing the storage?): never deleted here"
            )
        if not report.found and not report.foreign:
            click.echo("no orphans: storage holds only what the ledger points to")
        elif delete and report.found:
            click.echo(
                f"removed {len(report.removed)} orphans"
                + (f"; {len(report.locked)} locked, kept" if report.locked else "")
                + (f"; {len(report.errors)} could not be removed" if report.errors else "")
            )
        elif report.found:
            click.echo(
                f"{len(report.found)} orphans: `backupctl verify --orphans --delete` removes them"
            )
    ctx.exit(exit_code[0])


@cli.command("prune")
@click.option("--dry-run", is_flag=True, help="Say what would be pruned; change nothing.")
@OLDER_THAN
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def prune(ctx: click.Context, dry_run: bool, older_than: float, as_json: bool) -> None:
    """Delete nightly backups that [retention] no longer keeps; their rows turn `pruned`.

    Per app it keeps the newest keep_daily nights and the newest night of each of
    the newest keep_weekly weeks and keep_monthly months (and always the newest).
    Ad-hoc backups are never pruned. An app whose newest nightly backup carries a
    warning (far smaller than usual) keeps every backup: an older one may be its
    last good one. A backup still under its S3 Object Lock is kept, row and all,
    and listed with the date its lock ends (exit 0: expected). Then it removes the
    orphans that `verify --orphans` would list.

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
        swept = _sweep(ledger, settings, older_than, delete=not dry_run)
        exit_code[0] = 1 if report.errors or swept.errors else 0
    verb = "would prune" if dry_run else "pruned"
    if as_json:
        emit_json(
            "prune",
            {
                "dry_run": dry_run,
                "kept": report.kept,
                "errors": report.errors + swept.errors,
                "orphans": [_orphan_json(o) for o in swept.found],
                "pruned": [
                    {"app_id": r["app_id"], "run_date": r["run_date"], "backup_id": r["id"]}
                    for r in report.pruned
                ],
                "locked": [
                    {
                        "app_id": r["app_id"],
                        "run_date": r["run_date"],
                        "backup_id": r["id"],
                        "mode": lock.mode,
                        "locked_until": lock.until,
                    }
                    for r, lock in report.locked
                ],
                "orphans_locked": [{"uri": o.uri, "lock": why} for o, why in swept.locked],
                "protected": [
                    {"app_id": app_id, "reason": reason}
                    for app_id, reason in sorted(report.protected.items())
                ],
            },
        )
    else:
        for app_id, reason in sorted(report.protected.items()):
            click.echo(f"kept every backup of {app_id}: {reason}")
        # A year of history is millions of lines: written a thousand at a time.
        for start in range(0, len(report.pruned), 1000):
            click.echo(
                "\n".join(
                    f"{verb} {row['app_id']} {row['run_date']} (b{row['id']}, "
                    f"{human_size(row['size_bytes'])})"
                    for row in report.pruned[start : start + 1000]
                )
            )
        for row, lock in report.locked:  # expected: retention ends before the lock does
            click.echo(f"kept {row['app_id']} {row['run_date']} (b{row['id']}): {lock.describe()}")
        for orphan in swept.found if dry_run else swept.removed:
            click.echo(f"{'would remove' if dry_run else 'removed'} orphan {orphan.uri}")
        for orphan, why in swept.locked:
            click.echo(f"kept orphan {orphan.uri}: {why}")
        errors = len(report.errors) + len(swept.errors)
        kept = report.kept + len(report.locked)
        click.echo(
            f"{verb} {plural(len(report.pruned), 'backup')}, kept {kept}"
            + (f" ({len(report.locked)} locked)" if report.locked else "")
            + (f", {plural(len(swept.found), 'orphan')}" if swept.found else "")
            + (f"; {errors} could not be deleted" if errors else "")
        )
    ctx.exit(exit_code[0])
