"""Benchmark a restore: `backupctl restore` of a Postgres backup against the raw
``zstd -dc ARTIFACT | pg_restore`` into a fresh database.

It generates the benchmark database of ``bench/backup.py`` (about ``--size-gb`` GB as
``pg_database_size``), backs it up once with the real CLI (``run-nightly`` to a
``file://`` folder), drops the source database, and then measures, each as its own
process tree and alternating which goes first from round to round:

- raw:       ``CREATE DATABASE`` of a new database (psycopg), then
             ``zstd -dc ARTIFACT | pg_restore --no-password --single-transaction
             --exit-on-error --dbname=...``: the pg_restore argv backupctl's restore
             uses (``pg_restore_argv``), the same pg_restore, the same stored artifact;
- backupctl: the real CLI, ``python -m backupctl restore benchdb --date D --to
             env:VAR`` into a database that does not exist yet: it starts, opens the
             ledger, creates the database, streams the artifact into pg_restore while
             it checks its sha256 and size (one pass), and exits.

Both create their database inside the measured time; dropping it afterwards is not
counted, on either side.

How it measures (as ``bench/drill.py`` does): wall time of each whole variant; peak RSS
(VmHWM) of backupctl exactly and of zstd and pg_restore sampled every 10 ms; CPU of
the variant's own processes, not of the Postgres server. Throughput is
``pg_database_size`` of the source over the time, MB = 10^6 bytes. Before each variant
the page cache is flushed (``sync``) and the server checkpoints, so neither pays for
the other's writes; the artifact itself stays in the page cache for both. The load
average is printed before and after every run: the machine may be shared.

The last line is ``ratio=R``: the median over rounds of raw time / backupctl time.
Target: R >= 0.9.

Run it with ``.venv/bin/python bench/restore.py`` (about 1 GB, 3 rounds); ``--quick`` for
a smoke run at 0.2 GB, one round; ``--size-gb X``, ``--repeat K``. It starts a
throwaway Postgres with ``pgserver`` in a temporary directory, or uses the server named
by ``BACKUPCTL_BENCH_DATABASE_URL`` (where it creates uniquely named databases and
drops them at the end). It needs the ``zstd`` program (``apt-get install zstd``).
Everything it started or created is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from backupctl.kinds.postgres import libpq_env, pg_restore_argv, split_password
from backupctl.redact import redact_url

if not __package__:  # run as `python bench/restore.py`: put the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.backupctl_cli import APP_ID, Backupctl, clean_env, file_path, past_nights
from bench.benchdb import database_size, generate, scratch_database
from bench.drill import drop, settle
from bench.measure import GB, MB, PeakSampler, kill, reap, rss_text, run_against_zstd

MIN_RATIO = 0.9
TARGET_ENV = "BENCH_RESTORE_DSN"


@dataclass
class Run:
    seconds: float  # CREATE DATABASE + the restore (raw); the whole CLI process (backupctl)
    rss: dict[str, float]  # process -> peak RSS in MB
    cpu_seconds: float  # user + system of the variant's processes (not the Postgres server)
    load: tuple[float, float]  # 1-minute load average before and after


@dataclass
class Variant:
    label: str
    run: Callable[[str], Run]
    runs: list[Run]


def loadavg() -> float:
    return os.getloadavg()[0]


def raw_restore(url: str, pg_restore: str, zstd: str, artifact: Path) -> Callable[[str], Run]:
    def run(tag: str) -> Run:
        name = f"bench_raw_{uuid.uuid4().hex[:8]}"
        conninfo, password = split_password(make_conninfo(url, dbname=name))
        argv = pg_restore_argv(pg_restore, conninfo, False)
        settle(url)
        load = loadavg()
        try:
            with tempfile.TemporaryFile() as stderr:
                started = time.perf_counter()
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                unpack = subprocess.Popen(
                    [zstd, "-dc", "-q", str(artifact)], stdout=subprocess.PIPE
                )
                try:
                    assert unpack.stdout is not None
                    restore = subprocess.Popen(
                        argv,
                        stdin=unpack.stdout,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                        env=libpq_env(password, clean_env()),
                    )
                except BaseException:
                    kill(unpack)
                    raise
                unpack.stdout.close()
                try:
                    with PeakSampler({unpack.pid: "zstd", restore.pid: "pg_restore"}) as sampler:
                        zstd_code, zstd_cpu = reap(unpack)
                        restore_code, restore_cpu = reap(restore)
                    seconds = time.perf_counter() - started
                finally:
                    kill(unpack)
                    kill(restore)
                if zstd_code != 0 or restore_code != 0:
                    stderr.seek(0)
                    tail = stderr.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"raw restore failed: zstd exit {zstd_code}, pg_restore {restore_code}:"
                        f"\n{tail}"
                    )
        finally:
            drop(url, name)
        rss = {label: sampler.peaks_mb().get(label, 0.0) for label in ("zstd", "pg_restore")}
        return Run(seconds, rss, zstd_cpu + restore_cpu, (load, loadavg()))

    return run


def backupctl_restore(
    backupctl: Backupctl, env: dict[str, str], url: str, night: str
) -> Callable[[str], Run]:
    def run(tag: str) -> Run:
        name = f"bench_restored_{uuid.uuid4().hex[:8]}"
        settle(url)
        load = loadavg()
        try:
            cli = backupctl.cli(
                ["restore", APP_ID, "--date", night, "--to", f"env:{TARGET_ENV}"],
                {**env, TARGET_ENV: make_conninfo(url, dbname=name)},
                tag,
            )
        finally:
            drop(url, name)
        if (
            f"created database {name}"
            not in (backupctl.workdir / f"backupctl-{tag}.log").read_text()
        ):
            raise RuntimeError(f"backupctl restore did not create {name}: {cli.output}")
        rss = {label: cli.rss.get(label, 0.0) for label in ("backupctl", "pg_restore")}
        return Run(cli.seconds, rss, cli.cpu_seconds, (load, loadavg()))

    return run


def peak_rss(runs: Sequence[Run]) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for run in runs:
        for name, mb in run.rss.items():
            peaks[name] = max(peaks.get(name, 0.0), mb)
    return peaks


def variant_line(label: str, db_bytes: int, runs: Sequence[Run]) -> str:
    seconds = statistics.median(r.seconds for r in runs)
    line = (
        f"{label:<10}{db_bytes / GB:.2f} GB in {seconds:.2f}s = {db_bytes / MB / seconds:.1f} MB/s"
        f"  peak RSS {rss_text(peak_rss(runs))}"
    )
    notes = [f"CPU {statistics.median(r.cpu_seconds for r in runs):.2f}s"]
    if len(runs) > 1:
        notes.append("median of " + ", ".join(f"{r.seconds:.2f}s" for r in runs))
    notes.append("load " + ", ".join(f"{a:.1f}-{b:.1f}" for a, b in (r.load for r in runs)))
    return f"{line}  ({'; '.join(notes)})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--size-gb", type=float, default=None, help="database size in GB (1.0; 0.2 with --quick)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="rounds (3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.2 GB, one round")
    args = parser.parse_args(argv)
    if args.size_gb is None:
        args.size_gb = 0.2 if args.quick else 1.0
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.size_gb <= 0 or not 1 <= args.repeat <= 100:
        parser.error("--size-gb must be positive, --repeat from 1 to 100")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_against_zstd(
        "bench/restore.py",
        "zstd -dc | pg_restore",
        "pg_restore",
        lambda stack, zstd, bin_dir: run(stack, args, zstd, bin_dir),
    )


def run(stack: contextlib.ExitStack, args: argparse.Namespace, zstd: str, bin_dir: str) -> float:
    from bench.servers import database_url

    url = stack.enter_context(database_url("backupctl-bench-restore-pg-"))
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="backupctl-bench-restore-")))
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

    with scratch_database(url, "bench_data") as source_dsn:
        started = time.perf_counter()
        generate(source_dsn, args.size_gb)
        db_bytes = database_size(source_dsn)
        took = time.perf_counter() - started
        backupctl = Backupctl(ledger_dsn, source_dsn, work, bin_dir, past_nights())
        env = backupctl.env(storage_dir.as_uri(), {"BACKUPCTL_PG_BIN_DIR": bin_dir})
        backup, row = backupctl.backup(env, "backup")
    assert row.uri is not None and row.size is not None
    artifact = file_path(row.uri)
    print(
        f"{'database':<10}{db_bytes / GB:.2f} GB (pg_database_size) generated in {took:.1f}s;"
        f" backed up in {backup.seconds:.1f}s to {row.size / MB:.0f} MB; {args.repeat} round(s)"
    )
    sys.stdout.flush()

    variants = [
        Variant("raw", raw_restore(url, str(Path(bin_dir) / "pg_restore"), zstd, artifact), []),
        Variant("backupctl", backupctl_restore(backupctl, env, url, row.night.isoformat()), []),
    ]
    for i in range(args.repeat):
        for variant in variants if i % 2 == 0 else reversed(variants):
            variant.runs.append(variant.run(f"{variant.label}-{i}"))
            print(f"  round {i + 1}: {variant.label} {variant.runs[-1].seconds:.2f}s")
            sys.stdout.flush()
    for variant in variants:
        print(variant_line(variant.label, db_bytes, variant.runs))
    raw, ours = variants
    ratio = statistics.median(
        r.seconds / o.seconds for r, o in zip(raw.runs, ours.runs, strict=True)
    )
    verdict = "ok" if ratio >= MIN_RATIO else "MISSED"
    print(f"targets: ratio {ratio:.2f} (raw / backupctl, >= {MIN_RATIO}: {verdict})")
    return ratio


if __name__ == "__main__":
    sys.exit(main())
