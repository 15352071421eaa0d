"""Benchmark a restore drill: `backupctl drill` of a Postgres backup against the raw
``zstd -dc ARTIFACT | pg_restore`` into a fresh database.

It generates the benchmark database of ``bench/backup.py`` (about ``--size-gb`` GB as
``pg_database_size``), backs it up once with the real CLI (``run-nightly`` to a
``file://`` folder), drops the source database, and then measures, each as its own
process tree and alternating which goes first from round to round:

- raw:   ``CREATE DATABASE`` of a new database (psycopg), then
         ``zstd -dc ARTIFACT | pg_restore --no-password --single-transaction
         --exit-on-error --no-owner --no-privileges --dbname=...``: the pg_restore argv
         backupctl's drill uses (``pg_restore_argv``), the same pg_restore, the same
         stored artifact. Dropping that database afterwards is timed apart, not counted
         in the ratio; the ``drop`` line gives the ratio with it counted, since the
         drill's own drop (about 1 s at 1 GB: DROP DATABASE checkpoints) is in its time;
- drill: the real CLI, ``python -m backupctl drill --app benchdb --json``: verify the
         artifact's sha256, create ``backupctl_drill_<id>``, restore into it, count the
         rows of every table, drop it, record the drill in the ledger, exit.

Row counting is *excluded* from the drill time: the drill's exact ``count(*)`` of every
restored table is a full scan that the raw pipeline does not do. The drill runs under
``bench/backupctl_cli.py``'s bootstrap with a prelude that times each call of
``backupctl.kinds.pgdrill._count_rows`` (an exact clock around it, nothing else changed); that
time is subtracted from the drill's wall time and printed on its own ``counting`` line,
together with the ratio it would give included.

How it measures (as ``bench/backup.py`` does): wall time of each whole variant; peak RSS
(VmHWM) of backupctl exactly and of zstd and pg_restore sampled every 10 ms; CPU of
the variant's own processes, not of the Postgres server. Throughput is
``pg_database_size`` of the source over the time, MB = 10^6 bytes. Before each variant
the page cache is flushed (``sync``) and the server checkpoints, so neither pays for
the other's writes; the artifact itself stays in the page cache for both.

The last line is ``ratio=R``: the median over rounds of drill time (counting excluded) /
raw time. Target: R <= 1.2.

Run it with ``.venv/bin/python bench/drill.py`` (about 1 GB, 3 rounds); ``--quick`` for a
smoke run at 0.2 GB, one round; ``--size-gb X``, ``--repeat K``. It starts a throwaway
Postgres with ``pgserver`` in a temporary directory, or uses the server named by
``BACKUPCTL_BENCH_DATABASE_URL`` (where it creates uniquely named databases and drops
them at the end). It needs the ``zstd`` program (``apt-get install zstd``). Everything
it started or created is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from backupctl.drill import SCRATCH_PREFIX

if not __package__:  # run as `python bench/drill.py`: put the repo root on sys.path for bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.backupctl_cli import APP_ID, Backupctl
from bench.benchdb import table_rows
from bench.harness import backed_up, description, run_against_zstd, size_args, start
from bench.measure import GB, MB, throughput_text
from bench.rawrestore import drop, restore_raw, settle

MAX_RATIO = 1.2
COUNT_FILE_ENV = "BENCH_COUNT_SECONDS_FILE"

# Run inside the drill's process before backupctl starts: appends the seconds of every
# row count to the file named by $BENCH_COUNT_SECONDS_FILE.
COUNT_TIMER = f"""\
import os as _os, time as _time
import backupctl.kinds.pgdrill as _drill
def _timed(conn, _count=_drill._count_rows, _path=_os.environ[{COUNT_FILE_ENV!r}]):
    started = _time.perf_counter()
    try:
        return _count(conn)
    finally:
        with open(_path, "a") as fh:
            fh.write(f"{{_time.perf_counter() - started}}\\n")
_drill._count_rows = _timed
"""


@dataclass
class Run:
    seconds: float  # counted: raw create + restore; the drill's wall time less counting
    rss: dict[str, float]  # process -> peak RSS in MB
    cpu_seconds: float  # user + system of the variant's processes (not the Postgres server)
    aside_seconds: float = 0.0  # not counted: raw's drop afterwards, the drill's counting
    step_seconds: float | None = None  # the drill's own duration_s, less counting (drill only)


@dataclass
class Variant:
    label: str
    run: Callable[[str], Run]
    runs: list[Run]


def raw_restore(url: str, pg_restore: str, zstd: str, artifact: Path) -> Callable[[str], Run]:
    def run(tag: str) -> Run:
        name = f"bench_raw_{uuid.uuid4().hex[:8]}"
        settle(url)
        try:
            seconds, rss, cpu_seconds = restore_raw(
                url, name, pg_restore, zstd, artifact, no_owner=True, no_privileges=True
            )
        finally:
            dropped = time.perf_counter()
            drop(url, name)
            drop_seconds = time.perf_counter() - dropped
        return Run(seconds, rss, cpu_seconds, aside_seconds=drop_seconds)

    return run


def drill_run(
    backupctl: Backupctl, env: dict[str, str], url: str, backup_id: int, rows: int
) -> Callable[[str], Run]:
    def run(tag: str) -> Run:
        counts = backupctl.workdir / f"count-{tag}.txt"
        counts.unlink(missing_ok=True)
        settle(url)
        try:
            cli = backupctl.cli(
                ["drill", "--app", APP_ID, "--json"],
                {**env, COUNT_FILE_ENV: str(counts)},
                tag,
                prelude=COUNT_TIMER,
            )
        finally:  # a drill killed by our own interruption cannot drop its scratch database
            drop(url, f"{SCRATCH_PREFIX}{backup_id}")
        (result,) = json.loads(cli.output)["drills"]
        if result["status"] != "passed" or result["restored"].get("rows") != rows:
            raise RuntimeError(f"the drill did not pass with {rows} rows: {result}")
        counting = sum(float(line) for line in counts.read_text().split())
        rss = {label: cli.rss.get(label, 0.0) for label in ("backupctl", "pg_restore")}
        return Run(
            cli.seconds - counting,
            rss,
            cli.cpu_seconds,
            aside_seconds=counting,
            step_seconds=float(result["duration_s"]) - counting,
        )

    return run


# -- reporting --------------------------------------------------------------------------------


def variant_line(label: str, db_bytes: int, runs: Sequence[Run]) -> str:
    line = throughput_text(label, 10, db_bytes, runs)
    notes = [f"CPU {statistics.median(r.cpu_seconds for r in runs):.2f}s"]
    aside = statistics.median(r.aside_seconds for r in runs)
    if label == "raw":
        notes.append(f"DROP DATABASE afterwards {aside:.2f}s, not counted")
    else:
        notes.append("row counting excluded")
        steps = [r.step_seconds for r in runs if r.step_seconds is not None]
        notes.append(f"drill step per its duration_s {statistics.median(steps):.2f}s")
    if len(runs) > 1:
        notes.append("median of " + ", ".join(f"{r.seconds:.2f}s" for r in runs))
    return f"{line}  ({'; '.join(notes)})"


# -- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = size_args(argparse.ArgumentParser(description=description(__doc__)), argv)
    return run_against_zstd("bench/drill.py", "zstd -dc | pg_restore", "pg_restore", args, run)


def run(stack: contextlib.ExitStack, args: argparse.Namespace, zstd: str, bin_dir: str) -> float:
    setup = start(stack, "drill", zstd)
    url = setup.url
    source = backed_up(
        setup,
        args.size_gb,
        bin_dir,
        {"BACKUPCTL_DRILL_POSTGRES_URL": url, "BACKUPCTL_PG_BIN_DIR": bin_dir},
    )
    db_bytes, row = source.db_bytes, source.row
    with psycopg.connect(setup.ledger_dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT id FROM backupctl.backups WHERE app_id = %s AND run_date = %s",
            [APP_ID, row.night],
        ).fetchone()
    assert found is not None
    rows = sum(table_rows(args.size_gb).values())
    print(
        f"{'database':<10}{db_bytes / GB:.2f} GB (pg_database_size) generated in"
        f" {source.generate_seconds:.1f}s, {rows} rows; backed up in {source.backup.seconds:.1f}s"
        f" to {source.stored_bytes / MB:.0f} MB; {args.repeat} round(s)"
    )
    sys.stdout.flush()

    variants = [
        Variant(
            "raw", raw_restore(url, str(Path(bin_dir) / "pg_restore"), zstd, source.artifact), []
        ),
        Variant("drill", drill_run(source.backupctl, source.env, url, int(found[0]), rows), []),
    ]
    for i in range(args.repeat):
        for variant in variants if i % 2 == 0 else reversed(variants):
            variant.runs.append(variant.run(f"{variant.label}-{i}"))
    for variant in variants:
        print(variant_line(variant.label, db_bytes, variant.runs))
    raw, drill = variants
    ratio = statistics.median(
        d.seconds / r.seconds for r, d in zip(raw.runs, drill.runs, strict=True)
    )
    counting = statistics.median(d.aside_seconds for d in drill.runs)
    with_counting = statistics.median(
        (d.seconds + d.aside_seconds) / r.seconds for r, d in zip(raw.runs, drill.runs, strict=True)
    )
    print(
        f"{'counting':<10}the drill's exact row count ({rows} rows) took {counting:.2f}s"
        f" (median), not in the drill time above; with it the ratio is {with_counting:.2f}"
    )
    dropped = statistics.median(r.aside_seconds for r in raw.runs)
    with_drop = statistics.median(
        d.seconds / (r.seconds + r.aside_seconds) for r, d in zip(raw.runs, drill.runs, strict=True)
    )
    print(
        f"{'drop':<10}raw's DROP DATABASE afterwards took {dropped:.2f}s (median), not in the raw"
        f" time above; counted there too, as the drill's own drop is in its time, the ratio is"
        f" {with_drop:.2f}"
    )
    verdict = "ok" if ratio <= MAX_RATIO else "MISSED"
    print(f"targets: ratio {ratio:.2f} (drill / raw, <= {MAX_RATIO}: {verdict})")
    return ratio


if __name__ == "__main__":
    sys.exit(main())
