"""Benchmark a Postgres backup: the raw pipeline against backupctl to file:// and to S3 (moto).

It generates a realistic database (customers, orders, events as jsonb and text documents,
with two secondary indexes; about ``--size-gb`` GB as ``pg_database_size``) and then
measures, each as its own process tree:

- raw:       ``pg_dump --format=custom --compress=0 | zstd -3 -q -o FILE``, two processes
             joined by a pipe (the same pg_dump argv backupctl uses);
- file://:   the real CLI, ``python -m backupctl run-nightly --date D``, storing to a
             ``file://`` folder next to the raw output;
- s3 (moto): the same command storing to ``s3://bucket/prefix`` on a moto server;
- file:// age: the file:// variant with ``[encryption] recipients`` set (a key made for
             the run), so every artifact is compressed, then encrypted with age;
- pg_dump only: the limit, the same pg_dump argv with its archive to /dev/null: no
             compressor, hash or file can make a backup faster than that.

Every backupctl run uses a new ``--date`` so it really dumps; its ledger is a separate
database on the same server. Each variant runs ``--repeat`` times at the base size (order
alternating between rounds) and the median time is reported, then once more at
``--scale`` times the size, to see whether peak memory grows with the database.

How it measures:

- Throughput is ``pg_database_size`` of the generated database divided by the wall time
  of the whole variant (for backupctl: interpreter start, imports, ledger, the backup,
  publish with fsync, exit), in MB/s with MB = 10^6 bytes. The uncompressed dump size
  is printed too, for reference; the same basis is used for every variant.
- Peak RSS (printed in MB = 10^6 bytes) is per process: the kernel's high-water mark of
  its resident set, ``VmHWM`` in ``/proc/PID/status``. ``ru_maxrss`` from ``wait4`` or
  ``RUSAGE_CHILDREN`` can't be used for this: on Linux, exec() carries the high-water
  mark of the memory it replaces into the new program's ``ru_maxrss``, so a pg_dump
  started by a 60 MB Python process reports at least 60 MB. backupctl itself runs under
  a small bootstrap that registers an ``atexit`` hook and then starts ``backupctl`` with
  ``runpy.run_module`` exactly as ``python -m`` does; at exit the hook reads the
  process's own ``VmHWM`` (exact). pg_dump and zstd (and backupctl's pg_dump child,
  found by its parent pid) are sampled every 10 ms until they exit; ``VmHWM`` only
  grows, so this misses at most growth in a process's last 10 ms.
- CPU is the user + system seconds of the variant's own processes (from ``wait4``:
  pg_dump and zstd; backupctl with its pg_dump), not of the Postgres server, whose share
  is the same for all. Unlike wall time it hardly changes when the machine is busy.
- Between variants the page cache is flushed to disk (``sync``) and the previous
  artifact is deleted; the database itself stays cached, for every variant alike.

The last line is ``ratio=R``: backupctl's file:// throughput divided by the raw
pipeline's at the base size, as the median over rounds of (raw time / backupctl time):
the two run back to back in every round, so they share whatever else the machine does.
A line before it gives the encrypted path against the unencrypted one the same way
(median of file:// time / file:// age time; target >= 0.9), and one before that the
limit: pg_dump alone, and the raw pipeline and file:// as a fraction of it.
Targets: R >= 1.0; backupctl's peak RSS under 150 MB, and no larger at 4x the size: not
above the largest base-size peak by more than noise, max(5 MB, 5%, the spread between
the base-size runs). S3 parts are 8 MiB, so one part more or less alive at the peak
moves backupctl's RSS by 8 MB from run to run, whatever the size.

Run it with ``.venv/bin/python bench/backup.py`` (about 1 GB, then 4 GB); ``--quick``
for a smoke run at 0.2 GB; ``--size-gb X``, ``--scale S`` (``--scale 1`` skips the
repeat), ``--repeat K``. It starts a throwaway Postgres with ``pgserver`` in a temporary
directory, or uses the server named by ``BACKUPCTL_BENCH_DATABASE_URL`` (where it creates
two uniquely named databases and drops them at the end), and a moto server on
127.0.0.1. It needs the ``zstd`` program (``apt-get install zstd``). Everything it
started or created is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyrage

from backupctl.kinds.postgres import libpq_env, pg_dump_argv, split_password

if not __package__:  # run as `python bench/backup.py`: put the repo root on sys.path for bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.backupctl_cli import Backupctl, clean_env, file_path, past_nights
from bench.benchdb import scratch_database
from bench.harness import description, generated, run_against_zstd, size_args, start
from bench.measure import GB, MB, PeakSampler, kill, peak_rss, reap, run_piped, throughput_text
from bench.servers import moto_server

ZSTD_LEVEL = 3

# Targets from the issue.
MIN_RATIO = 1.0
MIN_ENCRYPTED = 0.9
MAX_RSS_MB = 150.0
RSS_NOISE_MB = 5.0
RSS_NOISE_FRACTION = 0.05

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}

# -- the variants -----------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss: dict[str, float]  # process -> peak RSS in MB
    stored_bytes: int
    cpu_seconds: float  # user + system of the variant's processes (not the Postgres server)
    backup_seconds: float | None = None  # the backup itself, per the ledger (backupctl only)
    fsync_seconds: float | None = None  # fsync of the raw output after the fact (raw only)


@dataclass
class Variant:
    label: str
    run: Callable[[str], Run]  # argument: a tag for this run's output
    runs: list[Run] = field(default_factory=list)


def raw_pipeline(pg_dump: str, zstd: str, source_dsn: str, out_dir: Path) -> Callable[[str], Run]:
    conninfo, password = split_password(source_dsn)
    argv = pg_dump_argv(pg_dump, conninfo)
    env = libpq_env(password, clean_env())

    def run(tag: str) -> Run:
        out = out_dir / f"raw-{tag}.pgdump.zst"
        started = time.perf_counter()
        piped = run_piped(
            started,
            lambda: subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env
            ),
            lambda dumped: subprocess.Popen(
                [zstd, f"-{ZSTD_LEVEL}", "-q", "-f", "-o", str(out)], stdin=dumped
            ),
            ("pg_dump", "zstd"),
        )
        dump_code, zstd_code = piped.codes
        if dump_code != 0 or zstd_code != 0:
            raise RuntimeError(f"raw pipeline failed: pg_dump exit {dump_code}, zstd {zstd_code}")
        fd = os.open(out, os.O_RDONLY)
        try:
            synced = time.perf_counter()
            os.fsync(fd)
            fsync_seconds = time.perf_counter() - synced
        finally:
            os.close(fd)
        return Run(
            piped.seconds,
            piped.rss,
            out.stat().st_size,
            piped.cpu_seconds,
            fsync_seconds=fsync_seconds,
        )

    return run


def dump_only(pg_dump: str, source_dsn: str) -> Callable[[str], Run]:
    """The limit: the same pg_dump argv, its archive straight to /dev/null."""
    conninfo, password = split_password(source_dsn)
    argv = pg_dump_argv(pg_dump, conninfo)
    env = libpq_env(password, clean_env())

    def run(tag: str) -> Run:
        started = time.perf_counter()
        dump = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        try:
            with PeakSampler({dump.pid: "pg_dump"}) as sampler:
                code, cpu = reap(dump)
            seconds = time.perf_counter() - started
        finally:
            kill(dump)
        if code != 0:
            raise RuntimeError(f"pg_dump to /dev/null failed: exit {code}")
        return Run(seconds, {"pg_dump": sampler.peaks_mb().get("pg_dump", 0.0)}, 0, cpu)

    return run


def backupctl_variant(
    backupctl: Backupctl, storage: str, extra_env: dict[str, str], remove: Callable[[str], None]
) -> Callable[[str], Run]:
    """Runs of `backupctl run-nightly` storing to `storage`; each artifact is removed after."""
    env = backupctl.env(storage, extra_env)

    def run(tag: str) -> Run:
        cli, row = backupctl.backup(env, tag)
        assert row.uri is not None and row.size is not None
        remove(row.uri)
        rss = {name: cli.rss.get(name, 0.0) for name in ("backupctl", "pg_dump")}
        return Run(cli.seconds, rss, row.size, cli.cpu_seconds, backup_seconds=row.seconds)

    return run


def remove_file_artifact(uri: str) -> None:
    file_path(uri).unlink()


def decompressed_size(zstd: str, path: Path) -> int:
    """Bytes of `zstd -dc path`: the uncompressed pg_dump archive."""
    proc = subprocess.Popen([zstd, "-dc", str(path)], stdout=subprocess.PIPE)
    total = 0
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
    finally:
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"zstd -dc {path} exited {proc.returncode}")
    return total


# -- reporting --------------------------------------------------------------------------------


def median_seconds(runs: Sequence[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def variant_line(label: str, db_bytes: int, runs: Sequence[Run]) -> str:
    line = throughput_text(label, 14, db_bytes, runs)
    notes = [
        f"CPU {statistics.median(r.cpu_seconds for r in runs):.2f}s",
    ]
    if any(r.stored_bytes for r in runs):
        notes.append(f"stored {statistics.median(r.stored_bytes for r in runs) / MB:.0f} MB")
    backup = [r.backup_seconds for r in runs if r.backup_seconds is not None]
    if backup:
        notes.append(f"backup step {statistics.median(backup):.2f}s")
    fsync = [r.fsync_seconds for r in runs if r.fsync_seconds is not None]
    if fsync:
        notes.append(f"fsync afterwards {statistics.median(fsync):.2f}s, not counted")
    if len(runs) > 1:
        notes.append("median of " + ", ".join(f"{r.seconds:.2f}s" for r in runs))
    return f"{line}  ({'; '.join(notes)})"


def rss_range(runs: Sequence[Run], name: str) -> tuple[float, float]:
    values = [run.rss[name] for run in runs if name in run.rss]
    return min(values), max(values)


def no_growth(base: Sequence[Run], scaled: Sequence[Run], name: str) -> bool:
    """Peak RSS at the larger size exceeds none at the base size by more than noise:
    max(5 MB, 5%, the spread between the base-size runs themselves)."""
    low, high = rss_range(base, name)
    noise = max(RSS_NOISE_MB, high * RSS_NOISE_FRACTION, high - low)
    return rss_range(scaled, name)[1] <= high + noise


# -- main -------------------------------------------------------------------------------------


def measure(variants: Sequence[Variant], repeat: int, tag: str) -> None:
    for i in range(repeat):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for variant in order:
            os.sync()  # earlier runs' dirty pages go to disk before this one starts
            variant.runs.append(variant.run(f"{tag}-{i}"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    def scale(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--scale",
            type=float,
            default=4.0,
            help="repeat once at this multiple of the size, for peak RSS (4; 1 skips it)",
        )

    return size_args(
        argparse.ArgumentParser(description=description(__doc__)),
        argv,
        repeat_help="runs per variant at the base size (3; 1 quick)",
        quick_help="smoke run: 0.2 GB, one run each",
        more=scale,
        positive=["scale"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_against_zstd(
        "bench/backup.py", "pg_dump | zstd -3", "pg_dump", parse_args(argv), run
    )


def run(stack: contextlib.ExitStack, args: argparse.Namespace, zstd: str, bin_dir: str) -> float:
    import boto3

    setup = start(stack, "backup", zstd)
    url, work, ledger_dsn, storage_dir = setup.url, setup.work, setup.ledger_dsn, setup.storage_dir
    endpoint = stack.enter_context(moto_server())
    (work / "out").mkdir()

    s3 = boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_REGION"],
    ).client("s3", endpoint_url=endpoint)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)

    def remove_s3_artifact(uri: str) -> None:
        parts = urlsplit(uri)
        s3.delete_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))

    # A public key only: like a backup machine, the bench holds no identity file.
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    nights = past_nights()

    def round_at(size_gb: float, repeat: int, suffix: str) -> tuple[int, list[Variant]]:
        with scratch_database(url, "bench_data") as source_dsn:
            db_bytes, took = generated(source_dsn, size_gb)
            backupctl = Backupctl(ledger_dsn, source_dsn, work, bin_dir, nights)
            variants = [
                Variant(
                    "raw",
                    raw_pipeline(str(Path(bin_dir) / "pg_dump"), zstd, source_dsn, work / "out"),
                ),
                Variant(
                    "file://",
                    backupctl_variant(backupctl, storage_dir.as_uri(), {}, remove_file_artifact),
                ),
                Variant(
                    "s3 (moto)",
                    backupctl_variant(
                        backupctl,
                        f"s3://{bucket}/nightly",
                        {**AWS_ENV, "AWS_ENDPOINT_URL_S3": endpoint},
                        remove_s3_artifact,
                    ),
                ),
                Variant(
                    "file:// age",
                    backupctl_variant(
                        backupctl,
                        storage_dir.as_uri(),
                        {"BACKUPCTL_ENCRYPTION_RECIPIENTS": recipient},
                        remove_file_artifact,
                    ),
                ),
                # Last, so the indexes above stay: base[0] raw, [1] file://, [3] file:// age.
                Variant("pg_dump only", dump_only(str(Path(bin_dir) / "pg_dump"), source_dsn)),
            ]
            print(
                f"{'database' + suffix:<14}{db_bytes / GB:.2f} GB (pg_database_size) generated in"
                f" {took:.1f}s; {repeat} run(s) per variant"
            )
            sys.stdout.flush()
            measure(variants, repeat, suffix.strip() or "1x")
            raw_out = work / "out" / f"raw-{suffix.strip() or '1x'}-0.pgdump.zst"
            dump_bytes = decompressed_size(zstd, raw_out)
            for path in (work / "out").iterdir():
                path.unlink()
        for variant in variants:
            print(variant_line(f"{variant.label}{suffix}", db_bytes, variant.runs))
        print(
            f"{'dump' + suffix:<14}{dump_bytes / GB:.2f} GB uncompressed"
            f" ({dump_bytes / db_bytes:.0%} of the database), zstd -{ZSTD_LEVEL} to"
            f" {variants[0].runs[0].stored_bytes / MB:.0f} MB"
            f" ({dump_bytes / variants[0].runs[0].stored_bytes:.1f}:1)"
        )
        sys.stdout.flush()
        return db_bytes, variants

    db_bytes, base = round_at(args.size_gb, args.repeat, "")
    # Throughput ratio = raw time / backupctl time; the median over rounds, since the two
    # run back to back in every round and so share whatever else the machine is doing.
    ratio = statistics.median(
        raw.seconds / ours.seconds for raw, ours in zip(base[0].runs, base[1].runs, strict=True)
    )

    # The limit: backupctl can be no faster than the pg_dump it reads.
    limit = base[4].runs
    of_raw = statistics.median(
        d.seconds / r.seconds for d, r in zip(limit, base[0].runs, strict=True)
    )
    of_ours = statistics.median(
        d.seconds / r.seconds for d, r in zip(limit, base[1].runs, strict=True)
    )
    print(
        f"limit: pg_dump alone to /dev/null, {db_bytes / MB / median_seconds(limit):.1f} MB/s;"
        f" raw runs at {of_raw:.2f} of it, file:// at {of_ours:.2f}"
        " (median over rounds of pg_dump time / variant time)"
    )

    encrypted = statistics.median(
        plain.seconds / aged.seconds for plain, aged in zip(base[1].runs, base[3].runs, strict=True)
    )
    print(
        f"encrypted: file:// with age at {encrypted:.2f}x the unencrypted file:// throughput"
        f" (median of {len(base[1].runs)} rounds of plain time / encrypted time)"
    )

    ours = {v.label: peak_rss(v.runs).get("backupctl", 0.0) for v in base[1:]}
    rss_ok = all(mb < MAX_RSS_MB for mb in ours.values())
    growth_ok: bool | None = None
    if args.scale > 1:
        print(f"--- again at {args.scale:g}x the size, for peak RSS ---")
        _, scaled = round_at(args.size_gb * args.scale, 1, f" {args.scale:g}x")
        pairs = []
        growth_ok = True
        for b, s in zip(base, scaled, strict=True):
            before, after = peak_rss(b.runs), peak_rss(s.runs)
            for name in before:
                if name in after:
                    low, high = rss_range(b.runs, name)
                    was = f"{high:.0f}" if round(low) == round(high) else f"{low:.0f}-{high:.0f}"
                    pairs.append(f"{b.label} {name} {was} -> {after[name]:.0f} MB")
                    if name == "backupctl":
                        growth_ok = growth_ok and no_growth(b.runs, s.runs, name)
                        rss_ok = rss_ok and after[name] < MAX_RSS_MB
        print(f"peak RSS 1x -> {args.scale:g}x: " + ", ".join(pairs))
    verdicts = [
        f"ratio {ratio:.2f} (>= {MIN_RATIO}: {'ok' if ratio >= MIN_RATIO else 'MISSED'})",
        f"encrypted {encrypted:.2f}x (>= {MIN_ENCRYPTED}: "
        f"{'ok' if encrypted >= MIN_ENCRYPTED else 'MISSED'})",
        f"backupctl peak RSS < {MAX_RSS_MB:.0f} MB: {'ok' if rss_ok else 'MISSED'}",
    ]
    if growth_ok is not None:
        verdicts.append(
            f"no growth at {args.scale:g}x (within max({RSS_NOISE_MB:.0f} MB,"
            f" {RSS_NOISE_FRACTION:.0%}, spread at 1x)): {'ok' if growth_ok else 'MISSED'}"
        )
    print("targets: " + "; ".join(verdicts))
    return ratio


if __name__ == "__main__":
    sys.exit(main())
