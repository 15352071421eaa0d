"""backupctl's real CLI as the benchmarks run it: a child process per command, with a
configuration and registry of its own (one postgres app), its peak RSS and CPU measured.

Shared by ``bench/backup.py`` and ``bench/drill.py``. Every run is
``python -c BOOTSTRAP ...``: a small bootstrap that registers an ``atexit`` hook and then
starts ``backupctl`` with ``runpy.run_module`` exactly as ``python -m backupctl`` does; at
exit the hook writes the process's own peak RSS (``VmHWM``, exact). Its child programs
(pg_dump, pg_restore) are sampled by ``PeakSampler``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg

from bench.measure import PeakSampler, kib_to_mb, kill, reap

REPO = Path(__file__).resolve().parent.parent
APP_ID = "benchdb"
DSN_ENV = "BENCH_SOURCE_DSN"
# backupctl refuses a --date after tomorrow: every run takes the next of consecutive past
# nights, starting this many days ago (the ledger is fresh, so none of them is done yet).
NIGHTS_BACK = 1000

# Runs backupctl exactly as `python -m backupctl ARGS` does, and writes at exit this
# process's peak RSS (VmHWM, KiB) to the file named by argv[1]. {prelude} runs first.
BOOTSTRAP = """\
import atexit, runpy, sys
def _record(path=sys.argv[1]):
    with open("/proc/self/status") as fh:
        hwm = [line.split()[1] for line in fh if line.startswith("VmHWM:")]
    with open(path, "w") as fh:
        fh.write(hwm[0])
atexit.register(_record)
{prelude}
sys.argv = ["backupctl", *sys.argv[2:]]
runpy.run_module("backupctl", run_name="__main__", alter_sys=True)
"""


def clean_env() -> dict[str, str]:
    """This environment without settings that could steer backupctl, libpq or boto3."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BACKUPCTL_", "AWS_", "PG")) and k != DSN_ENV
    }


def past_nights() -> Iterator[date]:
    """Consecutive nights from NIGHTS_BACK days ago: one new night per backup."""
    first = date.today() - timedelta(days=NIGHTS_BACK)
    return (first + timedelta(days=i) for i in range(NIGHTS_BACK))


@dataclass
class CliRun:
    """One measured backupctl command."""

    seconds: float  # wall time of the whole process: start, imports, work, exit
    rss: dict[str, float]  # process -> peak RSS in MB ("backupctl" and its children)
    cpu_seconds: float  # user + system of backupctl and the children it reaped
    output: str  # what it printed (stdout; stderr separately in the log)


@dataclass(frozen=True)
class BackupRow:
    """A backup as the ledger recorded it."""

    night: date
    status: str
    uri: str | None
    size: int | None
    seconds: float | None  # finished_at - started_at


@dataclass
class Backupctl:
    """Everything the backupctl CLI runs with; one new night per backup."""

    ledger_dsn: str
    source_dsn: str
    workdir: Path
    bin_dir: str
    nights: Iterator[date]

    def env(self, storage: str, extra: dict[str, str]) -> dict[str, str]:
        """The environment of a run storing to `storage`, with `extra` settings."""
        env = clean_env()
        config = self.workdir / "backupctl.toml"
        config.write_text("# empty: every setting comes from the environment\n")
        registry = self.workdir / "apps.toml"
        registry.write_text(
            f'[[app]]\nid = "{APP_ID}"\nkind = "postgres"\n'
            f'dsn_env = "{DSN_ENV}"\npg_bin_dir = {json.dumps(self.bin_dir)}\n'
        )
        env.update(
            BACKUPCTL_CONFIG=str(config),
            BACKUPCTL_DATABASE_URL=self.ledger_dsn,
            BACKUPCTL_REGISTRY=str(registry),
            BACKUPCTL_STORAGE=storage,
            BACKUPCTL_RUN_MAX_ATTEMPTS="1",
            BACKUPCTL_RUN_PARALLEL="1",
            PYTHONPATH=str(REPO),
            **{DSN_ENV: self.source_dsn},
            **extra,
        )
        return env

    def cli(self, args: Sequence[str], env: dict[str, str], tag: str, prelude: str = "") -> CliRun:
        """Run `backupctl ARGS` and measure it; RuntimeError (with the end of its log)
        when it exits non-zero. `prelude`: Python run in it before backupctl starts."""
        usage_file = self.workdir / f"hwm-{tag}.txt"
        usage_file.unlink(missing_ok=True)
        argv = [sys.executable, "-c", BOOTSTRAP.format(prelude=prelude), str(usage_file)]
        argv += args
        log = self.workdir / f"backupctl-{tag}.log"
        with log.open("wb") as err, (self.workdir / f"backupctl-{tag}.out").open("w+b") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
            try:
                with PeakSampler({proc.pid: "backupctl"}) as sampler:
                    code, cpu = reap(proc)
                seconds = time.perf_counter() - started
            finally:
                kill(proc)
            out.seek(0)
            output = out.read().decode(errors="replace")
        if code != 0:
            text = (output + log.read_text(errors="replace"))[-2000:]
            raise RuntimeError(f"backupctl {' '.join(args)} exited {code}:\n{text}")
        rss = sampler.peaks_mb()
        with contextlib.suppress(OSError, ValueError):  # exact, unless the hook didn't run
            rss["backupctl"] = max(
                rss.get("backupctl", 0.0), kib_to_mb(int(usage_file.read_text()))
            )
        return CliRun(seconds, rss, cpu, output)

    def backup(self, env: dict[str, str], tag: str) -> tuple[CliRun, BackupRow]:
        """`backupctl run-nightly` of the next night, which must succeed."""
        night = next(self.nights)
        run = self.cli(["run-nightly", "--date", night.isoformat()], env, tag)
        row = self.row(night)
        if row.status != "succeeded" or not row.uri or not row.size:
            raise RuntimeError(f"backupctl's backup of {night} is {row.status}, not succeeded")
        return run, row

    def row(self, night: date) -> BackupRow:
        """The ledger's row of the app's backup of `night`."""
        with psycopg.connect(self.ledger_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT status, artifact_uri, size_bytes,"
                " extract(epoch FROM finished_at - started_at)::float8"
                " FROM backupctl.backups WHERE app_id = %s AND run_date = %s",
                [APP_ID, night],
            ).fetchone()
        if row is None:
            raise RuntimeError(f"no ledger row for {APP_ID} on {night}")
        return BackupRow(night, str(row[0]), row[1], row[2], row[3])


def file_path(uri: str) -> Path:
    """The local path of a file:// artifact URI."""
    return Path(unquote(urlsplit(uri).path))
