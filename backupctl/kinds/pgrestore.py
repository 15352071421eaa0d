"""Restore of a postgres backup: pg_restore --single-transaction into a database, with a
pg_restore that reads the archive, creating the database when it does not exist."""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import tempfile
from collections.abc import Callable

from backupctl.errors import BackupFailed, UsageError
from backupctl.kinds.pgarchive import HEADER_SIZE, archive_format
from backupctl.kinds.pgconnect import (
    Unreachable,
    connect,
    create_database,
    database_exists,
    drop_database,
    is_empty,
)
from backupctl.kinds.pgtools import PgTools, Tool, choose_pg_restore, major_of_recorded
from backupctl.kinds.postgres import libpq_env, pg_restore_argv, split_password
from backupctl.redact import redact_text, redact_url
from backupctl.restore import (
    CHUNK,
    Owners,
    RestoreFailed,
    RestoreRequest,
    Source,
    copy_data,
    signals_held,
)

log = logging.getLogger(__name__)

# pg_restore: error: could not execute query: ERROR:  role "shopowner" does not exist
_MISSING_ROLE = re.compile(r'role "[^"]*" does not exist')


def pg_restore_for(source: Source, tools: PgTools) -> Tool:
    """A pg_restore that can read the artifact: of the major version of the pg_dump
    recorded with it (or newer); for a backup without one, as new as its archive
    header's format needs. RestoreFailed naming what is needed when none fits."""
    try:
        found = tools.find("pg_restore")
        major = major_of_recorded(source.artifact.written_by)
        if major is not None:
            why = f"this backup was written by pg_dump {major}"
            return choose_pg_restore(found, major, range(major, major + 1), why)
        fmt = archive_format(source.head(HEADER_SIZE))
        readers = fmt.readers() if fmt is not None else None
        if fmt is None or readers is None:
            # A format this table does not know: the newest may read it, else its
            # own error says why.
            return choose_pg_restore(found, 0, range(0), "")
        need, writers = readers
        why = f"this backup's archive (format {fmt}) needs pg_restore {need} or newer"
        return choose_pg_restore(found, need, writers, why)
    except BackupFailed as exc:
        raise RestoreFailed(str(exc)) from None


def restore_database(source: Source, dsn: str, request: RestoreRequest, tools: PgTools) -> str:
    """Restore `source` into the database `dsn` (see backupctl.restore.RestoreRequest)."""
    try:
        conninfo, password = split_password(dsn)
    except BackupFailed as exc:
        raise UsageError(f"--to: {exc}") from None
    # Chosen first: a restore that cannot run must not create a database.
    tool = pg_restore_for(source, tools)
    log.info("restoring with pg_restore %s (%s)", tool.version, tool.folder)
    say = request.say
    created: str | None = None
    try:
        # A SIGTERM waits while the database is created: once it is, `created` names
        # it, so that the clean-up below drops it.
        with signals_held():
            created = _prepare_database(conninfo, password, dsn, request.clean, request.create, say)
        _run_pg_restore(source, tool, conninfo, password, dsn, request.clean, request.owners)
    except BaseException:
        if created is not None:  # leave the server as it was: without that database
            try:
                drop_database(conninfo, password, created)
                say(f"dropped database {created} again: the restore into it failed")
            except BackupFailed as exc:
                log.warning("could not drop database %s again: %s", created, exc)
        raise
    return f"{source.label} into {redact_url(dsn)} with pg_restore {tool.version}"


def _missing_database(conninfo: str, password: str | None) -> str | None:
    """The name of the target database if the server is there but the database is
    not (asked through the maintenance database); None otherwise."""
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(conninfo).get("dbname")
    if not dbname:
        return None
    try:
        return None if database_exists(conninfo, password, str(dbname)) else str(dbname)
    except Unreachable:
        return None


def _prepare_database(
    conninfo: str,
    password: str | None,
    dsn: str,
    clean: bool,
    create: bool,
    say: Callable[[str], None],
) -> str | None:
    """Make sure the target database exists and may be restored into; return its
    name when this restore created it."""
    try:
        with connect(conninfo, password) as conn:
            empty = is_empty(conn)
    except Unreachable as exc:
        dbname = _missing_database(conninfo, password)
        if dbname is None:
            raise RestoreFailed(f"cannot connect to the target database: {exc}") from None
        if not create:
            raise UsageError(
                f"the target database {dbname} does not exist (--no-create): "
                "create it first, or restore without --no-create"
            ) from None
        try:
            made = create_database(conninfo, password, dbname)
        except BackupFailed as failed:
            raise RestoreFailed(str(failed)) from None
        if not made:  # created by someone else meanwhile: it is theirs, check it
            return _prepare_database(conninfo, password, dsn, clean, False, say)
        say(f"created database {dbname}")
        return dbname
    if not clean and not empty:
        raise UsageError(
            f"the target database {redact_url(dsn)} is not empty: "
            "restore into an empty database, or pass --clean to replace what it holds"
        )
    return None


def _run_pg_restore(
    source: Source,
    tool: Tool,
    conninfo: str,
    password: str | None,
    dsn: str,
    clean: bool,
    owners: Owners,
) -> None:
    argv = pg_restore_argv(
        tool.path,
        conninfo,
        clean,
        no_owner=owners.no_owner,
        no_privileges=owners.no_privileges,
    )
    # stderr goes to a file: a pipe nobody reads could fill and stall pg_restore.
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=libpq_env(password),
            # pg_restore reads on while we decompress the next chunk (with Linux's
            # 64 KiB pipe it waited for every chunk, as `zstd -dc |` never makes it).
            pipesize=CHUNK,
        )
        assert proc.stdin is not None
        try:
            # One pass: the artifact is checked as it streams, and its last piece is
            # fed only once it matched the ledger. pg_restore runs in one transaction
            # and reads its archive to the end before it commits, so a damaged artifact
            # never commits: the error below (or the mismatch) kills it and it rolls
            # back. A pg_restore error on a damaged artifact is reported as the damage.
            with source.reader() as reader:
                try:
                    copy_data(reader, proc.stdin.write)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass  # pg_restore stopped reading: its exit status and stderr say why
                code = proc.wait()
                if code != 0:
                    stderr.seek(0)
                    tail = stderr.read().decode("utf-8", "replace").strip()[-2000:]
                    raise RestoreFailed(_failure(code, tail, dsn, password, owners))
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()


def _failure(code: int, tail: str, dsn: str, password: str | None, owners: Owners) -> str:
    """pg_restore's failure in one line, as every error: its lines joined, secrets
    masked, and the way out when the backup's roles are missing."""
    tail = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
    shown = redact_text(tail, [dsn, password or ""])
    hint = ""
    if _MISSING_ROLE.search(tail) and not (owners.no_owner and owners.no_privileges):
        hint = (
            "; the backup's roles do not exist on this server: create them first, "
            "or restore with --no-owner --no-privileges"
        )
    return f"pg_restore exited with status {code}: {shown}{hint}"
