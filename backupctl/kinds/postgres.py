"""Kind `postgres`: pg_dump --format=custom, streamed; the password never in argv."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import Writer, child_environment
from backupctl.kinds.process import stream_stdout
from backupctl.redact import redact_text
from backupctl.registry.model import App

log = logging.getLogger(__name__)


def app_dsn(app: App, environ: Mapping[str, str] | None = None) -> str:
    """The app's DSN, from `dsn` or from the environment variable named by `dsn_env`."""
    environ = os.environ if environ is None else environ
    if "dsn" in app.params:
        return str(app.params["dsn"])
    name = str(app.params["dsn_env"])
    value = environ.get(name)
    if not value:
        raise BackupFailed(f"environment variable {name} (dsn_env) is not set")
    return value


def split_password(dsn: str) -> tuple[str, str | None]:
    """Split a DSN (URL or key=value) into a conninfo without the password, and the password."""
    from psycopg import conninfo

    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError; its text may echo the DSN
        raise BackupFailed(f"invalid DSN: {redact_text(str(exc), [dsn])}") from None
    password = params.pop("password", None)
    if "sslpassword" in params:  # libpq has no environment variable for it: never in argv
        raise BackupFailed(
            "sslpassword in a DSN is not supported: use an unencrypted key file "
            "readable only by this user, or a passfile"
        )
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), (
        str(password) if password is not None else None
    )


def libpq_env(password: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for pg_dump/pg_restore: the password only in PGPASSWORD
    (`base`: the child environment, default ours without backupctl's settings)."""
    env = dict(child_environment() if base is None else base)
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return env


def pg_dump_argv(pg_dump: str, conninfo: str) -> list[str]:
    """pg_dump's argv: custom format, uncompressed (zstd follows), never a password prompt."""
    return [pg_dump, "--format=custom", "--compress=0", "--no-password", f"--dbname={conninfo}"]


def pg_restore_argv(pg_restore: str, conninfo: str, clean: bool) -> list[str]:
    """pg_restore's argv: one transaction, so a failed or refused restore leaves nothing."""
    argv = [pg_restore, "--no-password", "--single-transaction", "--exit-on-error"]
    if clean:
        argv += ["--clean", "--if-exists"]
    return [*argv, f"--dbname={conninfo}"]


def embedded_bin_dir() -> Path | None:
    """The bin folder of the PostgreSQL that the pgserver package ships, if installed."""
    spec = find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if folder.is_dir() else None


def find_program(name: str, bin_dir: str | None) -> str:
    """The configured bin dir, else PATH, else the embedded Postgres's binaries."""
    if bin_dir:
        candidate = Path(bin_dir) / name
        if not os.access(candidate, os.X_OK):
            raise BackupFailed(f"{name} not found in pg_bin_dir {bin_dir}")
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    embedded = embedded_bin_dir()
    if embedded is not None and os.access(embedded / name, os.X_OK):
        return str(embedded / name)
    raise BackupFailed(f"{name} not found: install the PostgreSQL client tools or set pg_bin_dir")


class PostgresKind:
    extension = "pgdump"

    def __init__(
        self, bin_dir: str | None = None, hidden_env: frozenset[str] = frozenset()
    ) -> None:
        self._bin_dir = bin_dir
        self._hidden_env = hidden_env

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> None:
        """Stream pg_dump's custom-format archive of the app's database to `out`."""
        conninfo, password = split_password(app_dsn(app))
        argv = pg_dump_argv(find_program("pg_dump", self._bin_dir), conninfo)
        shown = ("PGPASSWORD=*** " if password is not None else "") + shlex.join(argv)
        log.debug("app %s: running %s", app.id, shown)
        env = libpq_env(password, child_environment(self._hidden_env))
        stream_stdout(argv, out, cancel, env=env, label="pg_dump")

    def preflight(self, app: App) -> list[str]:
        problems = []
        try:
            find_program("pg_dump", self._bin_dir)
        except BackupFailed as exc:
            problems.append(str(exc))
        try:
            split_password(app_dsn(app))
        except BackupFailed as exc:
            problems.append(str(exc))
        return problems

    def secrets(self, app: App) -> list[str]:
        try:
            dsn = app_dsn(app)
        except BackupFailed:
            return []
        try:
            _, password = split_password(dsn)
        except BackupFailed:
            return [dsn]
        return [dsn] + ([password] if password else [])
