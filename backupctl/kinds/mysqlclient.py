"""How backupctl reaches a MySQL or MariaDB server: the mysql:// DSN, the option file
that carries the credentials, and the client programs (mariadb-dump/mysqldump,
mariadb/mysql), which also run backupctl's own few queries (no driver needed).

The password never reaches argv: user, password, host and port go into an option file
passed as `--defaults-extra-file`, the first argument, as the clients require. That
file has no name in any folder: an anonymous in-memory file (memfd; elsewhere an
unlinked temporary file), mode 0600, inherited by the client alone and opened by it
as /dev/fd/N. A kill at any moment, of backupctl or of the client, leaves nothing
behind to remove: the kernel frees it with the last process holding it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from backupctl.errors import BackupFailed
from backupctl.redact import redact_text

SCHEMES = ("mysql", "mariadb")
DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10  # seconds: the mariadb/mysql client's (the dumps have none)
DUMP_PROGRAMS = ("mariadb-dump", "mysqldump")  # the first found on PATH is used
CLIENT_PROGRAMS = ("mariadb", "mysql")
EXAMPLE = "mysql://user:password@host:3306/db, or mysql://user@/db?socket=/run/mysqld/mysqld.sock"
STDERR_TAIL = 2000
# "ERROR 2002 (HY000): Can't connect..." (mariadb, mysql); "Got error: 2002: ..." (dumps)
_ERROR_CODE = re.compile(r"(?:ERROR |Got error: )(\d{4})")
_ECHOED_STATEMENT = re.compile(r"^-{14}\n.*?^-{14}\n", re.DOTALL | re.MULTILINE)
_USING_PASSWORD = re.compile(r"\(using password: (YES|NO)\)")
_SAID = {"YES": "(with a password)", "NO": "(without a password)"}
# Client errors that mean the server was not reached (or went away): CR_* 2001-2013.
UNREACHABLE_CODES = frozenset(range(2001, 2014)) | {2026}


@dataclass(frozen=True)
class MysqlDsn:
    """A parsed mysql:// DSN. The password is kept out of repr()."""

    database: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    socket: str | None = None

    def with_database(self, database: str) -> MysqlDsn:
        """The same server and credentials, another database."""
        return replace(self, database=database)

    def url(self) -> str:
        """The DSN as a mysql:// URL again (with its password: for this process only)."""
        auth = quote(self.user, safe="") if self.user is not None else ""
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        if self.port is not None:
            host += f":{self.port}"
        query = f"?socket={quote(self.socket, safe='/')}" if self.socket else ""
        return f"mysql://{auth}{'@' if auth else ''}{host}/{quote(self.database, safe='')}{query}"

    @property
    def where(self) -> str:
        """The server as said in messages: host:port or the socket."""
        if self.socket:
            return f"socket {self.socket}"
        if self.host:
            return f"{self.host}:{self.port or DEFAULT_PORT}"
        return "the local server"


def parse_dsn(text: str, *, database_required: bool = True) -> MysqlDsn:
    """Parse `mysql://user:password@host:port/db` (user, password and db
    percent-decoded; `?socket=/path` for a Unix socket instead of host and port).
    ValueError saying what is wrong, never quoting the password."""
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in SCHEMES:
        raise ValueError(f"must be a mysql:// URL ({EXAMPLE})")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"is not a valid MySQL DSN ({EXAMPLE})") from None
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    path = parts.path.removeprefix("/")
    if "/" in path:
        raise ValueError("the database (the path) must be one name: mysql://host/db")
    database = unquote(path)
    if database_required and not database:
        raise ValueError(f"names no database: add it as the path ({EXAMPLE})")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "socket":
            raise ValueError(f"unknown parameter {name!r} (known: socket)")
        options[name] = value
    socket = options.get("socket") or None
    host = parts.hostname or None  # lower-cased; an IPv6 [::1] without its brackets
    if socket is not None:
        if not socket.startswith("/"):
            raise ValueError("socket must be an absolute path")
        if (host not in (None, "localhost")) or port is not None:
            raise ValueError("give a host and port, or ?socket=, not both")
        host = None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    for what, decoded in (("user", user), ("database", database), ("password", password)):
        if decoded is not None and "\0" in decoded:
            raise ValueError(f"the {what} must not contain a NUL character")
    return MysqlDsn(database, user, password, host, port, socket)


def dsn_secrets(text: str) -> list[str]:
    """What must never be shown of DSN `text`: itself and its password."""
    try:
        password = parse_dsn(text, database_required=False).password
    except ValueError:
        return [text]
    return [text] + ([password] if password else [])


# -- the option file ----------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}


def _option_value(value: str) -> str:
    # Double-quoted, so that # (a comment) and leading or trailing blanks are kept;
    # the escapes are the option file's own.
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


def option_file_text(dsn: MysqlDsn) -> str:
    """The option file: what the DSN says in its [client] group (read by every client
    program); a connect timeout in [mysql], which only the mariadb/mysql client reads
    (an option a program does not know is an error to it); and in [mariadb-client],
    which only MariaDB's client reads, not to echo a failed statement (a restore's
    holds the backup's rows). Settings the DSN leaves out come from the usual option
    files (~/.my.cnf)."""
    lines = ["[client]"]
    if dsn.user is not None:
        lines.append(f"user={_option_value(dsn.user)}")
    if dsn.password is not None:
        lines.append(f"password={_option_value(dsn.password)}")
    if dsn.socket is not None:
        lines += [f"socket={_option_value(dsn.socket)}", "protocol=socket"]
    elif dsn.host is not None:
        # A host means TCP, also "localhost" (which alone would mean the default socket).
        lines += [f"host={_option_value(dsn.host)}", f"port={dsn.port or DEFAULT_PORT}"]
        lines.append("protocol=tcp")
    elif dsn.port is not None:
        lines += [f"port={dsn.port}", "protocol=tcp"]
    lines += ["[mysql]", f"connect-timeout={CONNECT_TIMEOUT}"]
    lines += ["[mariadb-client]", "skip-print-query-on-error"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class OptionFile:
    """An open option file: pass `fd` to the child (pass_fds), `argument` first in argv."""

    fd: int

    @property
    def argument(self) -> str:
        return f"--defaults-extra-file=/dev/fd/{self.fd}"


def _nameless_file() -> int:
    """A file descriptor of a 0600 file that no folder lists."""
    if hasattr(os, "memfd_create"):  # Linux: in memory, never on a file system
        fd = os.memfd_create("backupctl-mysql-options", os.MFD_CLOEXEC)
    else:
        with tempfile.TemporaryFile() as made:  # unlinked as it is created
            fd = os.dup(made.fileno())
        os.set_inheritable(fd, False)
    try:
        # The clients ignore a world-writable option file (a memfd starts as 0777).
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def option_file(dsn: MysqlDsn) -> Iterator[OptionFile]:
    """The DSN's option file (option_file_text), open for the block: nameless and
    0600, so nothing is left behind whatever happens, SIGKILL included."""
    fd = _nameless_file()
    try:
        os.write(fd, option_file_text(dsn).encode())
        os.lseek(fd, 0, os.SEEK_SET)  # (where /dev/fd/N shares the offset: macOS)
        yield OptionFile(fd)
    finally:
        os.close(fd)


# -- the programs -------------------------------------------------------------------


def mysql_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The clients' environment: `base` without MYSQL_PWD, so that the password is
    the DSN's (known to backupctl, and masked) or the option files'."""
    return {k: v for k, v in base.items() if k != "MYSQL_PWD"}


def find_program(names: Sequence[str], environ: Mapping[str, str]) -> str:
    """The first of `names` on the PATH of `environ`; BackupFailed naming them all
    and what to install when none is there."""
    path = os.pathsep.join(os.get_exec_path(dict(environ)))
    for name in names:
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    alternatives = " nor ".join(names) if len(names) == 2 else ", ".join(names)
    raise BackupFailed(
        f"neither {alternatives} is on PATH ({path}): install mariadb-client or mysql-client"
    )


def program_version(program: str, environ: Mapping[str, str]) -> str | None:
    """'mariadb-dump 10.11.19-MariaDB', 'mysqldump 8.0.36': the program and the
    server release it comes with, from its --version; None when it does not say."""
    try:
        done = subprocess.run(
            [program, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(environ),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip()
    # "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)"
    # "mariadb-dump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)"
    # "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"
    match = re.search(r"\bDistrib (\S+?),|\bfrom (\S+?),|\bVer (\S+) for", text)
    if done.returncode != 0 or match is None:
        return None
    version = next(g for g in match.groups() if g)
    return f"{os.path.basename(program)} {version}"


def dump_argv(program: str, options: OptionFile, database: str) -> list[str]:
    """mysqldump's (or mariadb-dump's) argv: one consistent snapshot (InnoDB), rows
    streamed rather than buffered, routines, events and triggers included."""
    return [
        program,
        options.argument,  # the clients read it only as their first argument
        "--single-transaction",
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--default-character-set=utf8mb4",  # older mysqldumps default to 3-byte utf8
        "--no-tablespaces",  # else MySQL 8 asks for the PROCESS privilege
        "--",
        database,
    ]


def client_argv(program: str, options: OptionFile, database: str | None = None) -> list[str]:
    """The mariadb/mysql client's argv, reading statements from stdin, in batch mode
    (tab-separated results without headers), into `database` if given."""
    argv = [program, options.argument, "--batch", "--skip-column-names"]
    return argv + (["--", database] if database is not None else [])


class ClientError(BackupFailed):
    """A client program failed; the message is redacted. `code` is the MySQL error
    number it reported (2002: cannot connect, 1049: unknown database), if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def unreachable(self) -> bool:
        """The server was not reached (not there, or the connection broke)."""
        return self.code in UNREACHABLE_CODES


def client_failure(label: str, code: int, stderr: str, secrets: Sequence[str]) -> ClientError:
    """The ClientError of a program that exited with `code`: its stderr, on one
    line, redacted."""
    # A client that echoes the failed statement puts it between lines of dashes: a
    # restore's statement holds the backup's rows, never shown.
    stderr = _ECHOED_STATEMENT.sub("", stderr)
    text = " | ".join(line.strip() for line in stderr.strip().splitlines() if line.strip())
    # "(using password: YES)" says no secret, but reads as one to the redaction.
    text = _USING_PASSWORD.sub(lambda m: _SAID[m[1]], text)
    text = redact_text(text[-STDERR_TAIL:], secrets)
    found = _ERROR_CODE.search(text)
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return ClientError(f"{label} {how}" + (f": {text}" if text else ""), _code(found))


def _code(found: re.Match[str] | None) -> int | None:
    return int(found.group(1)) if found else None


def _unescape(value: str) -> str | None:
    # Batch output escapes backslash, tab, newline and NUL; NULL is the bare word.
    if value == "NULL":
        return None
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "0": "\0"}.get(m[1], m[1]), value)


def query(
    client: str,
    dsn: MysqlDsn,
    sql: str,
    environ: Mapping[str, str],
    *,
    database: str | None = None,
    timeout: float | None = None,
) -> list[tuple[str | None, ...]]:
    """Run `sql` with the client program on the DSN's server (in `database`, or in
    none), statements on stdin; the rows it printed. ClientError when it fails."""
    with option_file(dsn) as options:
        try:
            done = subprocess.run(
                client_argv(client, options, database),
                input=sql.encode(),
                capture_output=True,
                pass_fds=(options.fd,),
                env=mysql_environment(environ),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise ClientError(f"{os.path.basename(client)} ran longer than {timeout:g}s") from None
        except OSError as exc:
            raise ClientError(f"{client} cannot start: {exc.strerror}") from None
    if done.returncode != 0:
        raise client_failure(
            os.path.basename(client),
            done.returncode,
            done.stderr.decode("utf-8", "replace"),
            [dsn.password or "", dsn.url()],
        )
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    return [tuple(_unescape(v) for v in line.split("\t")) for line in lines]


def identifier(name: str) -> str:
    """`name` as a quoted identifier: `a``b`."""
    return "`" + name.replace("`", "``") + "`"


def literal(text: str) -> str:
    """`text` as a string literal whatever the server's sql_mode (no backslash or
    quote rules involved): _utf8mb4 X'…'."""
    return f"_utf8mb4 X'{text.encode().hex()}'" if text else "''"


# -- backupctl's own queries ----------------------------------------------------------


def server_version(client: str, dsn: MysqlDsn, environ: Mapping[str, str]) -> str:
    """The server's version ('10.11.19-MariaDB', '8.0.36'), asked in the DSN's database
    (so a missing database or a refused login is said too)."""
    rows = query(client, dsn, "SELECT VERSION();", environ, database=dsn.database)
    return str(rows[0][0]) if rows and rows[0] else "unknown"


@dataclass(frozen=True)
class DatabaseState:
    """Whether a database exists, and what it holds (what a restore would collide with)."""

    exists: bool
    tables: int = 0  # tables, views and sequences
    routines: int = 0
    events: int = 0

    @property
    def empty(self) -> bool:
        return not (self.tables or self.routines or self.events)


def database_state(
    client: str, dsn: MysqlDsn, environ: Mapping[str, str], name: str | None = None
) -> DatabaseState:
    """Whether database `name` (default: the DSN's) exists on the DSN's server and
    what it holds; asked without entering it, so a missing one is no error."""
    db = literal(name if name is not None else dsn.database)
    rows = query(
        client,
        dsn,
        f"SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {db}),"
        f" (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db}),"
        f" (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db}),"
        f" (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {db});",
        environ,
    )
    exists, tables, routines, events = (int(v or 0) for v in rows[0])
    return DatabaseState(bool(exists), tables, routines, events)


def create_database(client: str, dsn: MysqlDsn, name: str, environ: Mapping[str, str]) -> bool:
    """CREATE DATABASE `name` on the DSN's server; False when it exists already."""
    try:
        query(client, dsn, f"CREATE DATABASE {identifier(name)};", environ)
    except ClientError as exc:
        if exc.code == 1007:  # ER_DB_CREATE_EXISTS
            return False
        raise
    return True


def drop_database(client: str, dsn: MysqlDsn, name: str, environ: Mapping[str, str]) -> None:
    """DROP DATABASE IF EXISTS `name` on the DSN's server."""
    query(client, dsn, f"DROP DATABASE IF EXISTS {identifier(name)};", environ)


def base_tables(client: str, dsn: MysqlDsn, environ: Mapping[str, str]) -> list[str]:
    """The tables (not views or sequences) of the DSN's database, by name."""
    rows = query(
        client,
        dsn,
        "SELECT TABLE_NAME FROM information_schema.TABLES"
        f" WHERE TABLE_SCHEMA = {literal(dsn.database)} AND TABLE_TYPE = 'BASE TABLE'"
        " ORDER BY TABLE_NAME;",
        environ,
    )
    return [str(r[0]) for r in rows]


def count_rows(
    client: str, dsn: MysqlDsn, tables: Sequence[str], environ: Mapping[str, str]
) -> int:
    """The exact number of rows in `tables` of the DSN's database (COUNT(*), not the
    estimate information_schema keeps)."""
    if not tables:
        return 0
    # One statement a table: the client prints one count a line.
    script = "".join(f"SELECT COUNT(*) FROM {identifier(t)};\n" for t in tables)
    rows = query(client, dsn, script, environ, database=dsn.database)
    return sum(int(r[0] or 0) for r in rows)
