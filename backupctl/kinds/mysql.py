"""Kind `mysql` (MySQL or MariaDB): mariadb-dump (or mysqldump) of one database in one
consistent snapshot, with its routines, events and triggers, streamed as SQL;
restored with the mariadb (or mysql) client; drilled in a scratch database
(mysqldrill.py). The credentials travel in a nameless option file
(backupctl.kinds.mysqlclient), never in argv.

Manifest: `tables` (a count) and `table_names`, the tables the dump creates, read
from the stream as it passes (TableTee)."""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, UsageError
from backupctl.kinds import DumpResult, KindOptions, Writer, child_environment
from backupctl.kinds.fields import KindSpec, app_dsn, env_name, nonempty_str
from backupctl.kinds.mysqlclient import (
    CLIENT_PROGRAMS,
    DUMP_PROGRAMS,
    ClientError,
    MysqlDsn,
    client_argv,
    client_failure,
    create_database,
    database_state,
    drop_database,
    dsn_secrets,
    dump_argv,
    find_program,
    mysql_environment,
    option_file,
    parse_dsn,
    program_version,
    server_version,
)
from backupctl.kinds.process import stream_stdout
from backupctl.redact import redact_url

if TYPE_CHECKING:
    from backupctl.drill import DrillTargets
    from backupctl.manifest import Manifest
    from backupctl.registry.model import App
    from backupctl.restore import RestoreRequest, Source

log = logging.getLogger(__name__)

# Writes a dump's SQL to the function it is given (Source.copy_to).
Feed = Callable[[Callable[[bytes], object]], None]


def _dsn(value: Any) -> str:
    text = nonempty_str(value)
    parse_dsn(text)  # its ValueError says what is wrong, never quoting the password
    return text


def app_target(app: App, environ: Mapping[str, str] | None = None) -> MysqlDsn:
    """The app's parsed DSN; BackupFailed (never quoting the password) if it is bad."""
    try:
        return parse_dsn(app_dsn(app, environ))
    except ValueError as exc:
        where = "dsn" if "dsn" in app.params else f"{app.params['dsn_env']} (dsn_env)"
        raise BackupFailed(f"{where}: {exc}") from None


class TableTee:
    """A writer passing a dump through to `inner` while it notes the tables the dump
    creates: each `CREATE TABLE `name` (` line outside the DELIMITER ;; blocks that
    hold routine, trigger and event bodies (where such a line is code, not a table).
    Views and sequences are not tables here. Searched with a regular expression over
    each chunk, never line by line: a dump has a line per row."""

    # The newline before a match is matched; the one after only looked at, so that
    # it can start the next match.
    _LINE = re.compile(rb"\n(?:CREATE TABLE `((?:[^`\n]|``)+)` \(|DELIMITER (;;|;))(?=\n)")
    _KEEP = 1024  # bytes kept from the chunk before: longer than any matched line

    def __init__(self, inner: Writer) -> None:
        self._inner = inner
        self._carry = b"\n"  # the dump's first line counts as following a newline
        self._in_block = False
        self.tables: list[str] = []

    def write(self, data: bytes, /) -> int:
        self._inner.write(data)
        buf = self._carry + data
        new = len(self._carry)
        for match in self._LINE.finditer(buf):
            # A line needs the newline after it to match: one whose newline was in
            # the chunk before was taken then; one that ended that chunk is taken now.
            if match.end() < new:
                continue
            name, delimiter = match.groups()
            if delimiter is not None:
                self._in_block = delimiter == b";;"
            elif not self._in_block:
                self.tables.append(name.replace(b"``", b"`").decode("utf-8", "replace"))
        self._carry = buf[-self._KEEP :]
        return len(data)


class MysqlKind:
    extension = "sql"
    one_pass = False  # statements commit as they stream: verified first
    fields = KindSpec({"dsn": _dsn, "dsn_env": env_name}, one_of=(frozenset({"dsn", "dsn_env"}),))

    def __init__(self, options: KindOptions | None = None) -> None:
        self._options = options or KindOptions()

    def _environment(self) -> dict[str, str]:
        return mysql_environment(child_environment(self._options.hidden_env))

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Stream mariadb-dump's (or mysqldump's) SQL of the app's database to `out`;
        return which program wrote it and the tables the dump creates."""
        dsn = app_target(app)
        env = self._environment()
        program = find_program(DUMP_PROGRAMS, env)
        written_by = program_version(program, env)
        log.info(
            "app %s: dumping database %s on %s with %s",
            app.id,
            dsn.database,
            dsn.where,
            written_by or program,
        )
        tee = TableTee(out)
        with option_file(dsn) as options:
            argv = dump_argv(program, options, dsn.database)
            log.debug("app %s: running %s (its credentials in that file)", app.id, shlex.join(argv))
            stream_stdout(
                argv,
                tee,
                cancel,
                env=env,
                label=os.path.basename(program),
                pass_fds=(options.fd,),
            )
        tables = tee.tables
        empty = None if tables else "the database has no tables"
        manifest = {"tables": len(tables), "table_names": tables}
        return DumpResult(written_by=written_by, manifest=manifest, empty=empty)

    def preflight(self, app: App) -> list[str]:
        """Why a backup would fail now: no dump program, a bad or unset DSN, a server
        that cannot be reached or refuses the login, a missing database."""
        env = self._environment()
        problems: list[str] = []
        try:
            find_program(DUMP_PROGRAMS, env)
        except BackupFailed as exc:
            problems.append(str(exc))
        try:
            dsn = app_target(app)
        except BackupFailed as exc:
            return [*problems, str(exc)]
        try:
            client = find_program(CLIENT_PROGRAMS, env)
        except BackupFailed:
            return problems  # said above: the packages bring both programs
        try:
            server_version(client, dsn, env)
        except BackupFailed as exc:
            problems.append(f"cannot connect to the source database: {exc}")
        return problems

    def secrets(self, app: App) -> list[str]:
        try:
            return dsn_secrets(app_dsn(app))
        except BackupFailed:
            return []

    def restore(self, source: Source, target: str, request: RestoreRequest) -> str:
        """Pipe the dump into the mariadb (or mysql) client on the database of DSN
        `target`: see restore_into."""
        from backupctl.restore import RestoreFailed

        try:
            done = restore_into(
                source.copy_to,
                target,
                clean=request.clean,
                create=request.create,
                say=request.say,
                env=self._environment(),
            )
        except BackupFailed as exc:
            raise RestoreFailed(str(exc)) from None
        return f"{source.label} {done}"

    def drill(
        self,
        source: Source,
        app: App,
        manifest: Manifest | None,
        targets: DrillTargets,
        restored: dict[str, Any],
    ) -> None:
        """Restore into a scratch database on [drill] mysql_url, count its tables and
        rows; every table of the manifest must be there."""
        from backupctl.kinds.mysqldrill import drill_database

        drill_database(source, targets.server_url("mysql"), manifest, restored, self._environment())


def _quiet(_line: str) -> None:
    pass


def restore_into(
    feed: Feed,
    target: str,
    *,
    clean: bool,
    create: bool = True,
    say: Callable[[str], None] = _quiet,
    env: Mapping[str, str] | None = None,
) -> str:
    """Restore a mysql dump into the database of DSN `target` with the mariadb (or
    mysql) client (run in `env`: default ours, without backupctl's settings);
    `feed(write)` writes the dump's SQL (checked as it streams).

    A missing database is created (said through `say`), unless not `create`
    (UsageError); a database holding tables, views, routines or events is refused
    without `clean` (UsageError); with it, the dump's own DROP ... IF EXISTS
    statements replace what the backup holds, and what it does not hold stays.
    MySQL cannot undo DDL: a failed restore into a database it created drops that
    database again; into one that existed, it says the database may hold part of
    the backup. BackupFailed for the rest. Returns "into <DSN, redacted> with <client>"."""
    try:
        dsn = parse_dsn(target)
    except ValueError as exc:
        raise UsageError(f"--to: {exc}") from None
    env = mysql_environment(child_environment() if env is None else env)
    client = find_program(CLIENT_PROGRAMS, env)
    shown = redact_url(target)
    try:
        state = database_state(client, dsn, env)
        created = False
        if not state.exists:
            if not create:
                raise UsageError(
                    f"the target database {dsn.database} does not exist (--no-create): "
                    "create it first, or restore without --no-create"
                )
            created = create_database(client, dsn, dsn.database, env)
            if created:
                say(f"created database {dsn.database}")
            else:  # someone else was quicker: theirs, so it is checked as any other
                state = database_state(client, dsn, env)
    except ClientError as exc:
        raise BackupFailed(f"cannot use the target server {dsn.where}: {exc}") from None
    if not created and not state.empty and not clean:
        raise UsageError(
            f"the target database {shown} is not empty: "
            "restore into an empty database, or pass --clean to replace what it holds"
        )
    try:
        pipe_into(client, dsn, feed, env)
    except BaseException as exc:
        if created:
            try:
                drop_database(client, dsn, dsn.database, env)
                say(f"dropped database {dsn.database} again: the restore into it failed")
            except BackupFailed as failed:
                log.warning("could not drop database %s again: %s", dsn.database, failed)
        elif isinstance(exc, BackupFailed):
            raise BackupFailed(
                f"{exc}; the database may now hold part of the backup: "
                "restore it again with --clean"
            ) from None
        raise
    return f"into {shown} with {program_version(client, env) or os.path.basename(client)}"


def pipe_into(client: str, dsn: MysqlDsn, feed: Feed, env: Mapping[str, str]) -> None:
    """Pipe the dump `feed` writes into the client program `client`, on the DSN's
    database; ClientError with its stderr when it fails. Killed, never left to run
    the rest, when `feed` raises (a checksum mismatch, a signal)."""
    label = os.path.basename(client)
    with option_file(dsn) as options, tempfile.TemporaryFile() as stderr:
        # stderr goes to a file: a pipe nobody reads could fill and stall the client.
        proc = subprocess.Popen(
            client_argv(client, options, dsn.database),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=dict(env),
            pass_fds=(options.fd,),
        )
        assert proc.stdin is not None
        try:
            feed(proc.stdin.write)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped reading: its exit status and stderr say why
        except BaseException:
            proc.kill()  # before it reads to the end: the rest is never executed
            proc.wait()
            raise
        code = proc.wait()
        stderr.seek(0)
        text = stderr.read().decode("utf-8", "replace")
    if code != 0:
        raise client_failure(label, code, text, [dsn.password or "", dsn.url()])


__all__ = ["MysqlKind", "TableTee", "pipe_into", "restore_into"]
