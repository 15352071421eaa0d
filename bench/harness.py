"""The frame of the benchmarks against a zstd pipeline (``bench/backup.py``,
``bench/drill.py``, ``bench/restore.py``): their size options, their main, and the start
of their run, before anything is measured.

- ``size_args``: ``--size-gb``, ``--repeat`` and ``--quick`` (0.2 GB, one round);
- ``run_against_zstd``: find zstd and the embedded Postgres's tools, run inside an
  ExitStack that stops everything it started, also on SIGTERM or ^C, print ``ratio=R``;
- ``start``: the Postgres server, a temporary work folder, a scratch ledger database and
  a storage folder, and the ``server ...`` line;
- ``backed_up``: the benchmark database generated and backed up once with the real CLI,
  for the benchmarks that restore it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from backupctl.redact import redact_url
from bench.backupctl_cli import Backupctl, BackupRow, CliRun, file_path, past_nights
from bench.benchdb import database_size, generate, scratch_database
from bench.measure import on_sigterm
from bench.servers import database_url


def size_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    *,
    repeat_help: str = "rounds (3; 1 with --quick)",
    quick_help: str = "smoke run: 0.2 GB, one round",
    more: Callable[[argparse.ArgumentParser], None] | None = None,
    positive: Sequence[str] = (),
) -> argparse.Namespace:
    """Parse `argv` with ``--size-gb`` (1.0; 0.2 with --quick), ``--repeat`` (3; 1 with
    --quick) and ``--quick`` added to `parser`; `more` adds a script's own options
    after ``--size-gb``. A size (or an option named in `positive`) that is not positive
    or a repeat outside 1-100 is a usage error."""
    parser.add_argument(
        "--size-gb", type=float, default=None, help="database size in GB (1.0; 0.2 with --quick)"
    )
    if more is not None:
        more(parser)
    parser.add_argument("--repeat", type=int, default=None, help=repeat_help)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    if args.size_gb is None:
        args.size_gb = 0.2 if args.quick else 1.0
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    sizes = ["size_gb", *positive]
    if any(getattr(args, size) <= 0 for size in sizes) or not 1 <= args.repeat <= 100:
        names = " and ".join("--" + size.replace("_", "-") for size in sizes)
        parser.error(f"{names} must be positive, --repeat from 1 to 100")
    return args


def description(doc: str | None) -> str | None:
    """A script's --help description: the first line of its docstring."""
    return doc.splitlines()[0] if doc else None


def run_against_zstd(
    script: str,
    pipeline: str,
    tool: str,
    args: argparse.Namespace,
    run: Callable[[contextlib.ExitStack, argparse.Namespace, str, str], float],
) -> int:
    """A zstd-pipeline benchmark's main: find the zstd program and the embedded
    Postgres's tools (`tool` is the one it needs, named when missing), then
    `run(stack, args, zstd, bin_dir)` inside an ExitStack that stops everything it
    started, also on SIGTERM or ^C, and print its `ratio=R`. Returns the exit status."""
    import shutil
    import signal

    from backupctl.kinds.postgres import embedded_bin_dir

    zstd = shutil.which("zstd")
    if zstd is None:
        print(
            f"{script}: the zstd program is not installed (not on PATH); the raw"
            f" pipeline `{pipeline}` needs it. Install it (Debian/Ubuntu:"
            " `apt-get install zstd`) and run again.",
            file=sys.stderr,
        )
        return 2
    bin_dir = embedded_bin_dir()
    if bin_dir is None:
        print(f"{script}: pgserver's {tool} not found: pip install pgserver", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with contextlib.ExitStack() as stack:
            ratio = run(stack, args, zstd, str(bin_dir))
    except KeyboardInterrupt:
        print(f"{script}: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    print(f"ratio={ratio:.2f}")
    return 0


@dataclass(frozen=True)
class Setup:
    """What every run starts from: the server, the folders, the ledger."""

    url: str  # the Postgres server (given, or a throwaway one)
    work: Path  # a temporary folder, removed at the end
    ledger_dsn: str  # a scratch database for backupctl's ledger
    storage_dir: Path  # work/storage: backupctl's file:// storage


def start(stack: contextlib.ExitStack, name: str, zstd: str) -> Setup:
    """Start the server, make the work folder, the ledger database and the storage folder
    (each removed by `stack` at its end) for the benchmark `name`, and print the
    ``server ...`` line."""
    url = stack.enter_context(database_url(f"backupctl-bench-{name}-pg-"))
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"backupctl-bench-{name}-")))
    ledger_dsn = stack.enter_context(scratch_database(url, "bench_ledger"))
    storage_dir = work / "storage"
    storage_dir.mkdir()
    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    print(
        f"server {redact_url(url)} (Postgres {version[0] if version else '?'}), zstd {zstd},"
        f" {os.cpu_count()} CPUs; throughput = pg_database_size / wall time, MB = 10^6 bytes"
    )
    sys.stdout.flush()
    return Setup(url, work, ledger_dsn, storage_dir)


def generated(dsn: str, size_gb: float) -> tuple[int, float]:
    """Generate the benchmark database of about `size_gb` GB into the empty database
    `dsn`: its pg_database_size in bytes and the seconds that took."""
    started = time.perf_counter()
    generate(dsn, size_gb)
    db_bytes = database_size(dsn)
    return db_bytes, time.perf_counter() - started


@dataclass(frozen=True)
class BackedUp:
    """The benchmark database, backed up once by the real CLI; the source is dropped."""

    db_bytes: int  # pg_database_size of the source
    generate_seconds: float
    backupctl: Backupctl
    env: dict[str, str]  # the environment of the backup, for the runs after it
    backup: CliRun
    row: BackupRow  # the ledger's row of that backup
    artifact: Path  # its file in the storage folder
    stored_bytes: int  # its size


def backed_up(setup: Setup, size_gb: float, bin_dir: str, extra: dict[str, str]) -> BackedUp:
    """Generate the benchmark database in a scratch database, back it up once with
    ``run-nightly`` to the storage folder (`extra`: more settings of that environment),
    and drop the source."""
    with scratch_database(setup.url, "bench_data") as source_dsn:
        db_bytes, took = generated(source_dsn, size_gb)
        backupctl = Backupctl(setup.ledger_dsn, source_dsn, setup.work, bin_dir, past_nights())
        env = backupctl.env(setup.storage_dir.as_uri(), extra)
        backup, row = backupctl.backup(env, "backup")
    assert row.uri is not None and row.size is not None
    return BackedUp(db_bytes, took, backupctl, env, backup, row, file_path(row.uri), row.size)
