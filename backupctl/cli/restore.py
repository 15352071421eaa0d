"""backupctl restore."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from datetime import date
from types import FrameType
from typing import TYPE_CHECKING

import click

from backupctl.cli import cli
from backupctl.cli.common import IDENTITY, identities_from, parse_date, recorded, settings_from
from backupctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator


def _target(value: str) -> str:
    # env:NAME keeps a DSN with a password off the command line (and out of `ps`).
    if value.startswith("env:"):
        name = value[4:]
        if not os.environ.get(name):
            raise UsageError(f"--to {value}: environment variable {name} is not set")
        return os.environ[name]
    return value


@cli.command("restore")
@click.argument("app_id", metavar="APP")
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    metavar="YYYY-MM-DD",
    help="The night whose backup to restore [default: the latest night with a succeeded "
    "backup of APP].",
)
@click.option(
    "--adhoc",
    "backup_id",
    type=int,
    metavar="ID",
    help="Restore this ad-hoc backup (its id) instead of a night's.",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="TARGET",
    help="postgres, mysql: a DSN (or env:VAR holding it); files: a new or empty "
    "folder; command, sqlite: a new file, or - for standard output.",
)
@click.option(
    "--clean",
    is_flag=True,
    help="postgres, mysql: drop and recreate the backup's objects in a database that is "
    "not empty (mysql: by the dump's own DROP ... IF EXISTS); sqlite: replace an "
    "existing file (stop its app first).",
)
@click.option(
    "--no-create",
    is_flag=True,
    help="postgres, mysql: refuse a target database that does not exist (by default "
    "restore creates it).",
)
@click.option(
    "--no-owner",
    is_flag=True,
    help="postgres: pg_restore --no-owner; the objects become the restoring role's "
    "(for a server without the app's roles).",
)
@click.option(
    "--no-privileges",
    is_flag=True,
    help="postgres: pg_restore --no-privileges; skip the backup's GRANTs.",
)
@click.option(
    "--no-same-owner",
    is_flag=True,
    help="files: as root too, the restored files become root's instead of their recorded owners'.",
)
@IDENTITY
@click.pass_context
def restore(
    ctx: click.Context,
    app_id: str,
    run_date: date | None,
    backup_id: int | None,
    target: str,
    clean: bool,
    no_create: bool,
    no_owner: bool,
    no_privileges: bool,
    no_same_owner: bool,
    identity: str | None,
) -> None:
    """Restore one app's backup, checking its sha256 as it streams.

    Without --date or --adhoc: the app's latest succeeded nightly backup, named on
    stderr first. A damaged artifact (checksum mismatch) is refused: exit 1, nothing
    restored (postgres and files read it once, and make the restore final only once
    it checked out; the other kinds verify it first). SIGTERM stops it the same way.
    postgres: a target database that does not exist is created (said on
    stderr); pg_restore is chosen to read what the backup's pg_dump wrote; onto a
    fresh server without the app's roles, add --no-owner --no-privileges. mysql: a
    missing database is created too, and dropped again if the restore fails (MySQL
    cannot roll DDL back). files:
    links, FIFOs, modes and mtimes come back as they were, and as root the owners.
    sqlite: written beside the target, fsynced and renamed into place.
    An encrypted backup needs --identity: without it exit 2, with one that does not
    open it exit 1, both before the target is touched.

    \b
    Examples:
      backupctl restore shop --to postgresql://localhost/shop_restored
      backupctl restore shop --date 2026-11-28 --to postgresql://localhost/shop_restored
      backupctl restore shop --date 2026-11-28 --to env:RESTORE_DSN --clean
      backupctl restore shop --to postgresql://localhost/shop_empty --no-create
      backupctl restore shop --to postgresql://new-server/shop --no-owner --no-privileges
      backupctl restore wiki-uploads --date 2026-11-28 --to /srv/restore/wiki
      backupctl restore notes --to /srv/notes/restored.db
      backupctl restore crm --adhoc 4711 --to -
      backupctl restore shop --identity ~/backup-key.txt --to postgresql://localhost/shop_r
      backupctl restore crm-db --date 2026-11-28 --to mysql://admin@db.internal/crm_restored
    """
    if run_date is not None and backup_id is not None:
        raise click.UsageError("give --date D or --adhoc ID, not both")
    settings = settings_from(ctx)
    from backupctl.context import kind_options, open_ledger, open_storages
    from backupctl.restore import Owners, choose_artifact, restore_artifact

    quiet = bool(ctx.obj.get("quiet"))

    def say(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    identities = identities_from(identity)
    ledger = open_ledger(settings)
    with recorded(ledger, "restore", run_date) as exit_code:
        artifact = choose_artifact(ledger, app_id, run_date, backup_id)
        if run_date is None and backup_id is None:
            say(
                f"restoring the latest nightly backup of {app_id}: "
                f"night {artifact.run_date}, backup {artifact.backup_id}"
            )
        with _stopped_by_sigterm():
            message = restore_artifact(
                open_storages(settings),
                artifact,
                _target(target),
                clean=clean,
                kind_options=kind_options(settings),
                create=not no_create,
                say=say,
                owners=Owners(
                    no_owner=no_owner,
                    no_privileges=no_privileges,
                    same_owner=False if no_same_owner else None,
                ),
                identities=identities,
            )
        exit_code[0] = 0
    click.echo(message, err=target == "-")


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM or Ctrl-C stops the restore: raised once, so that every clean-up on
    the way runs (and a second signal cannot cut it short); then exit 1."""
    from backupctl.restore import RestoreFailed, RestoreStopped

    stopping: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping:
            stopping.append(signal.Signals(signum).name)
            raise RestoreStopped(stopping[0])

    # Ctrl-C too: else it would be click's bare "Aborted!", not what was left.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except RestoreStopped as exc:
        raise RestoreFailed(f"stopped by {exc}; the target was left as it was") from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
