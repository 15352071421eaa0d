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
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

if not __package__:  # run as `python bench/restore.py`: put the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.backupctl_cli import APP_ID, Backupctl
from bench.harness import backed_up, description, run_against_zstd, size_args, start
from bench.measure import GB, MB, throughput_text
from bench.rawrestore import drop, restore_raw, settle

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
        settle(url)
        load = loadavg()
        try:
            seconds, rss, cpu_seconds = restore_raw(url, name, pg_restore, zstd, artifact)
        finally:
            drop(url, name)
        return Run(seconds, rss, cpu_seconds, (load, loadavg()))

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


def variant_line(label: str, db_bytes: int, runs: Sequence[Run]) -> str:
    line = throughput_text(label, 10, db_bytes, runs)
    notes = [f"CPU {statistics.median(r.cpu_seconds for r in runs):.2f}s"]
    if len(runs) > 1:
        notes.append("median of " + ", ".join(f"{r.seconds:.2f}s" for r in runs))
    notes.append("load " + ", ".join(f"{a:.1f}-{b:.1f}" for a, b in (r.load for r in runs)))
    return f"{line}  ({'; '.join(notes)})"


def main(argv: Sequence[str] | None = None) -> int:
    args = size_args(argparse.ArgumentParser(description=description(__doc__)), argv)
    return run_against_zstd("bench/restore.py", "zstd -dc | pg_restore", "pg_restore", args, run)


def run(stack: contextlib.ExitStack, args: argparse.Namespace, zstd: str, bin_dir: str) -> float:
    setup = start(stack, "restore", zstd)
    source = backed_up(setup, args.size_gb, bin_dir, {"BACKUPCTL_PG_BIN_DIR": bin_dir})
    db_bytes, row = source.db_bytes, source.row
    print(
        f"{'database':<10}{db_bytes / GB:.2f} GB (pg_database_size) generated in"
        f" {source.generate_seconds:.1f}s; backed up in {source.backup.seconds:.1f}s to"
        f" {source.stored_bytes / MB:.0f} MB; {args.repeat} round(s)"
    )
    sys.stdout.flush()

    url, pg_restore = setup.url, str(Path(bin_dir) / "pg_restore")
    variants = [
        Variant("raw", raw_restore(url, pg_restore, zstd, source.artifact), []),
        Variant(
            "backupctl",
            backupctl_restore(source.backupctl, source.env, url, row.night.isoformat()),
            [],
        ),
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
