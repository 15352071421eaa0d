"""Benchmark the ledger's hot path: plan a night for N apps, plan it again, claim it all.

What it measures, for backupctl's own Ledger API and for a hand-written psycopg baseline
that hits an identical table (same migration, so the same columns, constraints and
indexes, in a second schema):

- plan:  ``ledger.plan(run_date, app_ids)`` for N new apps, against one
  ``INSERT … SELECT … FROM unnest(%s::text[]) ON CONFLICT … DO NOTHING`` of the same rows;
- rerun: the same two calls again for the same night (every row conflicts: a no-op);
- claim: ``ledger.claim_nightly(..., limit=100)`` until it returns nothing, against a
  ``FOR UPDATE SKIP LOCKED`` CTE feeding an ``UPDATE … RETURNING id``, 100 rows a batch,
  on an autocommit connection.

After a warm-up (a plan, a rerun and a few claim batches on each side, so caches are
warm and psycopg has prepared the claim statements) come ``--repeat`` rounds, each on a
new night: plan + rerun three times per side (on freshly truncated tables; they are cheap
and the noisiest), then claim the whole night once per side. The sides alternate which
goes first, and the median time of each step is reported as rows/s. Both tables are
ANALYZEd between the last rerun and the claims, so the claim plans never depend on
whether autovacuum happened to analyze one table and not the other. A CHECKPOINT before
each measured step keeps checkpoints out of the timings. Every step's outcome is checked
(N rows planned, none added by the rerun, N claimed, none left pending).

The peak memory of planning N apps is the growth of the process's peak RSS
(``ru_maxrss``) across the first ``ledger.plan`` call, and separately the peak of Python
allocations (``tracemalloc``) during one more, untimed, plan call on each side.

The last line is ``ratio=R``: backupctl's plan time divided by the raw plan time.
Targets: R <= 1.2; the rerun within 1.2x of raw; claims at least 0.8x the raw rate.

Run it with ``make bench`` (that is ``.venv/bin/python bench/plan.py``); options
``--apps N`` (default 100000) and ``--repeat K`` (default 3). It starts a throwaway
Postgres with ``pgserver`` in a temporary directory and deletes it at the end, or uses
the server named by ``BACKUPCTL_BENCH_DATABASE_URL``, where it creates two uniquely
named schemas and drops them again when done.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import resource
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from backupctl.ledger import Ledger, connect_ledger
from backupctl.redact import redact_url

if not __package__:  # run as `python bench/plan.py`: put the repo root on sys.path for bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import database_url

CLAIM_BATCH = 100
LEASE_SECONDS = 300.0
MAX_ATTEMPTS = 3
OWNER = "bench-plan"
PLAN_SAMPLES = 3  # plan + rerun samples per round (cheap, and noisier than the claims)
WARM_UP_CLAIMS = 10  # > psycopg's prepare_threshold (5): the measured claims run prepared
FIRST_NIGHT = date(2030, 1, 1)

# Targets from the issue: plan and rerun time ratios at most this, claim rate ratio at least.
MAX_TIME_RATIO = 1.2
MIN_CLAIM_RATIO = 0.8

RAW_PLAN = (
    "INSERT INTO backups (app_id, run_date, trigger, status)"
    " SELECT a, %s, 'nightly', 'pending' FROM unnest(%s::text[]) a"
    " ON CONFLICT (app_id, run_date) WHERE trigger = 'nightly' DO NOTHING"
)

RAW_CLAIM = (
    "WITH claimable AS ("
    " SELECT id FROM backups WHERE run_date = %s AND trigger = 'nightly' AND status = 'pending'"
    f" ORDER BY id LIMIT {CLAIM_BATCH} FOR UPDATE SKIP LOCKED)"
    " UPDATE backups AS b SET status = 'running', attempts = b.attempts + 1,"
    " lease_owner = %s, lease_expires_at = now() + interval '5 minutes'"
    " FROM claimable WHERE b.id = claimable.id RETURNING b.id"
)

Conn = psycopg.Connection[tuple[Any, ...]]


# -- where the benchmark runs -------------------------------------------------------------


@contextlib.contextmanager
def bench_schemas(admin: Conn) -> Iterator[tuple[str, str]]:
    """Yield two fresh schema names (backupctl's, the baseline's); drop both at the end."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"bench_backupctl_{suffix}", f"raw_bench_{suffix}")
    try:
        yield names
    finally:
        for name in names:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def connect_raw(url: str, schema: str) -> Conn:
    return psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")


# -- the two sides --------------------------------------------------------------------------


@dataclass
class Side:
    """One implementation of plan / claim, and the times it took."""

    name: str
    schema: str
    plan: Callable[[date, list[str]], None]
    claim_batch: Callable[[date], int]
    times: dict[str, list[float]] = field(default_factory=dict)

    def claim_all(self, run_date: date) -> int:
        claimed = 0
        while got := self.claim_batch(run_date):
            claimed += got
        return claimed


def backupctl_side(ledger: Ledger, schema: str) -> Side:
    def plan(run_date: date, app_ids: list[str]) -> None:
        ledger.plan(run_date, app_ids)

    def claim_batch(run_date: date) -> int:
        return len(ledger.claim_nightly(run_date, OWNER, CLAIM_BATCH, LEASE_SECONDS, MAX_ATTEMPTS))

    return Side("backupctl", schema, plan, claim_batch)


def raw_side(conn: Conn, schema: str) -> Side:
    def plan(run_date: date, app_ids: list[str]) -> None:
        conn.execute(RAW_PLAN, [run_date, app_ids])

    def claim_batch(run_date: date) -> int:
        return len(conn.execute(RAW_CLAIM, [run_date, OWNER]).fetchall())

    return Side("raw", schema, plan, claim_batch)


# -- helpers ----------------------------------------------------------------------------------


def table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def truncate(admin: Conn, schema: str) -> None:
    admin.execute(
        sql.SQL("TRUNCATE {}, {}, {} RESTART IDENTITY").format(
            table(schema, "backups"), table(schema, "nightly_runs"), table(schema, "drills")
        )
    )


def count_rows(admin: Conn, schema: str, run_date: date, status: str | None = None) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE run_date = %s").format(table(schema, "backups"))
    params: list[Any] = [run_date]
    if status is not None:
        query += sql.SQL(" AND status = %s")
        params.append(status)
    row = admin.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def settle(admin: Conn) -> None:
    """Flush dirty buffers before a measured step so a checkpoint doesn't land inside it."""
    gc.collect()
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        admin.execute("CHECKPOINT")


def expect(what: str, got: int, wanted: int) -> None:
    if got != wanted:
        sys.exit(f"bench/plan.py: {what}: expected {wanted} rows, found {got}")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def traced_plan_peak_mb(admin: Conn, side: Side, app_ids: list[str]) -> float:
    """The peak of Python allocations (tracemalloc) while `side` plans a new night."""
    truncate(admin, side.schema)
    gc.collect()
    tracemalloc.start()
    try:
        side.plan(FIRST_NIGHT, app_ids)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def max_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def one_round(admin: Conn, sides: Sequence[Side], run_date: date, app_ids: list[str]) -> None:
    """Plan and rerun the night PLAN_SAMPLES times on every side, then claim it all.

    Each sample starts from truncated tables; the order of the sides alternates.
    """
    n = len(app_ids)
    for sample in range(PLAN_SAMPLES):
        order = sides if sample % 2 == 0 else sides[::-1]
        for side in order:
            truncate(admin, side.schema)
        for step in ("plan", "rerun"):
            for side in order:
                settle(admin)
                seconds, _ = timed(functools.partial(side.plan, run_date, app_ids))
                expect(f"{side.name} {step}", count_rows(admin, side.schema, run_date), n)
                side.times.setdefault(step, []).append(seconds)
    for side in sides:
        # Fresh statistics on both tables, so both claim queries are planned alike.
        admin.execute(sql.SQL("ANALYZE {}").format(table(side.schema, "backups")))
    for side in sides:
        settle(admin)
        seconds, claimed = timed(functools.partial(side.claim_all, run_date))
        expect(f"{side.name} claim", claimed, n)
        expect(
            f"{side.name} rows left pending", count_rows(admin, side.schema, run_date, "pending"), 0
        )
        side.times.setdefault("claim", []).append(seconds)


def warm_up(admin: Conn, sides: Sequence[Side], run_date: date, app_ids: list[str]) -> None:
    """Warm caches and prepared statements: plan, rerun, and a few claim batches each."""
    for side in sides:
        truncate(admin, side.schema)
        side.plan(run_date, app_ids)
        side.plan(run_date, app_ids)
        for _ in range(WARM_UP_CLAIMS):
            side.claim_batch(run_date)


def report_line(step: str, n: int, ours: list[float], raw: list[float], rate: bool) -> float:
    """Print one figure; return the ratio (time ratio, or rate ratio when `rate`)."""
    t_ours, t_raw = statistics.median(ours), statistics.median(raw)
    ratio = t_raw / t_ours if rate else t_ours / t_raw
    ok = ratio >= MIN_CLAIM_RATIO if rate else ratio <= MAX_TIME_RATIO
    target = f"rate >= {MIN_CLAIM_RATIO}x raw" if rate else f"time <= {MAX_TIME_RATIO}x raw"
    print(
        f"{step:<6} backupctl {n} rows in {t_ours:.2f}s = {n / t_ours:,.0f} rows/s"
        f" | raw {t_raw:.2f}s = {n / t_raw:,.0f} rows/s"
        f" | x{ratio:.2f} ({target}: {'ok' if ok else 'MISSED'})"
    )
    return ratio


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--apps", type=int, default=100_000, help="apps per night (100000)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds (3)")
    args = parser.parse_args(argv)
    if args.apps < 1 or args.repeat < 1:
        parser.error("--apps and --repeat must be at least 1")
    return args


def run(url: str, n: int, repeat: int) -> float:
    app_ids = [f"app-{i:07d}" for i in range(n)]
    with contextlib.ExitStack() as stack:
        admin = stack.enter_context(psycopg.connect(url, autocommit=True))
        ours_schema, raw_schema = stack.enter_context(bench_schemas(admin))
        ledger = connect_ledger(url, ours_schema)
        stack.callback(ledger.close)
        connect_ledger(url, raw_schema).close()  # the same migrations: identical table
        raw_conn = stack.enter_context(connect_raw(url, raw_schema))
        version = admin.execute("SHOW server_version").fetchone()
        print(
            f"server {redact_url(url)} (Postgres {version[0] if version else '?'});"
            f" {n} apps; {repeat} rounds after a warm-up, medians of"
            f" {repeat * PLAN_SAMPLES} plan/rerun and {repeat} claim samples"
        )
        ours, raw = backupctl_side(ledger, ours_schema), raw_side(raw_conn, raw_schema)

        # Peak RSS growth of planning N apps: the first large allocation in this process.
        gc.collect()
        rss_before = max_rss_mb()
        ours.plan(FIRST_NIGHT, app_ids)
        rss_growth = max_rss_mb() - rss_before

        warm_up(admin, (ours, raw), FIRST_NIGHT, app_ids)
        for i in range(repeat):
            order = (ours, raw) if i % 2 == 0 else (raw, ours)
            one_round(admin, order, FIRST_NIGHT + timedelta(days=i + 1), app_ids)

        # Peak of Python-level allocations during one more (untimed) plan call per side.
        traced_peak = {side.name: traced_plan_peak_mb(admin, side, app_ids) for side in (ours, raw)}

    plan_ratio = report_line("plan", n, ours.times["plan"], raw.times["plan"], rate=False)
    report_line("rerun", n, ours.times["rerun"], raw.times["rerun"], rate=False)
    report_line("claim", n, ours.times["claim"], raw.times["claim"], rate=True)
    print(f"peak_rss_growth_mb={rss_growth:.1f}")
    print(
        f"peak_traced_alloc_mb={traced_peak[ours.name]:.1f}"
        f" (raw psycopg plan: {traced_peak[raw.name]:.1f})"
    )
    return plan_ratio


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with database_url("backupctl-bench-plan-") as url:
        ratio = run(url, args.apps, args.repeat)
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
