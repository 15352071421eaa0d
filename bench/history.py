"""Benchmark the cost of history: a ledger holding a year of nights against one holding
only the latest night, for the operations an operator runs every day.

Two ledgers are built in two schemas of one throwaway Postgres, with the real schema
(``connect_ledger`` runs every migration) and set-based SQL (``INSERT … SELECT`` over
``generate_series``):

- history: ``--apps`` apps (10,000) × ``--nights`` nights (365) of nightly backups,
  about 1 in 1,000 of them failed after 3 attempts, the rest succeeded with a size, a
  sha256, a storage key naming the backup id, a manifest; ``DRILLS_PER_NIGHT`` drills a
  night (1 in 20 failed); one ``nightly_runs`` row per night with its counts;
- current: the same apps, only the latest of those nights, built by the same statements.

Both are VACUUM ANALYZEd. Then each operation of ``READS`` and ``NIGHTLY`` runs on
both ledgers, alternating which goes first, ``--repeat`` times (after one warm-up run
each), and the medians are compared: a CLI command is the real ``backupctl`` in a
child process (imports, a registry of ``--apps`` apps and all), timed from start to
exit; a ledger call is timed in this process. Each round of ``NIGHTLY`` plans the next
night of every app, claims it 100 at a time until none is left, and finishes
``FINISH_SAMPLE`` claims one by one (the rest, untimed, in one statement). The
views of many nights (``VIEWS``: ``runs --grid`` and ``report --html``, 30 nights
each) are compared instead with a third ledger of exactly the ``SHOWN_NIGHTS`` nights
they show, built the same way: a ledger of one night cannot show 30, and the same page
from a year of history must cost what it costs from its own 30 nights.

``prune --dry-run`` is the exception: on the current ledger it has nothing to prune,
on the history it lists every backup retention drops (3.4 million), so its baseline
is the least that listing takes: one SQL statement picking the same rows (retention
in window functions, protected apps left out), its rows fetched and the same lines
written, in this process; ``PRUNE_RUNS`` run each (a minute apiece). The counts must
agree. Last comes a real ``prune`` of the oldest nights (``REAL_PRUNE_NIGHTS``, about
130,000 backups), reported as rows per second; the artifacts are not on disk, so
storage costs a failed unlink each.

Each line shows both medians and their ratio; the last line is ``ratio=R``, the worst
ratio. Target: R <= 1.2. Options: ``--apps``, ``--nights``, ``--repeat`` (default 5),
``--no-prune`` (skip the real prune). It starts a throwaway Postgres with ``pgserver``
(deleted at the end) or uses ``BACKUPCTL_BENCH_DATABASE_URL``, where it creates two
uniquely named schemas and drops them when done.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

if not __package__:  # run as `python bench/history.py`: put the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backupctl.ledger import Claim, Ledger, connect_ledger
from backupctl.redact import redact_url
from bench.measure import on_sigterm
from bench.servers import database_url

REPO = Path(__file__).resolve().parent.parent
MAX_RATIO = 1.2
CLAIM_BATCH = 100
LEASE_SECONDS = 300.0
MAX_ATTEMPTS = 3
OWNER = "bench-history"
DRILLS_PER_NIGHT = 10
FINISH_SAMPLE = 1000  # claims finished one by one and timed (the rest in one statement)
PRUNE_RUNS = 1  # prune --dry-run and its baseline take a minute each on the history
REAL_PRUNE_NIGHTS = 10
NIGHTS_PER_STATEMENT = 20  # nights inserted by one statement (and one transaction)
# The default [retention]: keep_daily 7, keep_weekly 4, keep_monthly 12.
RETENTION = {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}

Conn = psycopg.Connection[tuple[Any, ...]]

# One statement per chunk of nights: every app's nightly backup of each night.
# Ids are given (OVERRIDING SYSTEM VALUE) so each storage key names its own backup,
# in night order as a real ledger assigns them.
FILL_BACKUPS = """
INSERT INTO backups (id, app_id, run_date, trigger, status, attempts, created_at,
                     started_at, finished_at, next_attempt_at, artifact_uri, size_bytes,
                     sha256, manifest, error)
OVERRIDING SYSTEM VALUE
SELECT id, app_id, night, 'nightly',
       CASE WHEN bad THEN 'failed' ELSE 'succeeded' END,
       CASE WHEN bad THEN 3 ELSE 1 END,
       t0, t0 + make_interval(secs => 60 + a %% 600),
       t0 + make_interval(secs => 90 + a %% 600 + (h %% 300)),
       CASE WHEN bad THEN t0 + interval '4 hours' END,
       CASE WHEN NOT bad THEN
           %(root)s || app_id || '/' || night || '/' || app_id || '-' || night
           || '-b' || id || '-a1.dump.zst' END,
       CASE WHEN NOT bad THEN 20000000 + (h %% 60000000) END,
       CASE WHEN NOT bad THEN md5(id::text) || md5((id * 7)::text) END,
       CASE WHEN NOT bad THEN
           jsonb_build_object('uncompressed_bytes', 100000000 + (h %% 300000000)) END,
       CASE WHEN bad THEN 'pg_dump exited with status 1: could not connect to server' END
FROM (
    SELECT n * %(apps)s + a + 1 AS id, a, night, 'app-' || lpad(a::text, 5, '0') AS app_id,
           abs(hashint8((n * %(apps)s + a)::bigint)::bigint) AS h,
           abs(hashint8((n * %(apps)s + a)::bigint)::bigint) %% 1000 = 0 AS bad,
           now() - make_interval(days => %(last)s - n) - interval '5 hours' AS t0
    FROM generate_series(%(lo)s::int, %(hi)s::int) AS n
    CROSS JOIN LATERAL (SELECT %(first)s::date + n AS night) AS d
    CROSS JOIN generate_series(0, %(apps)s - 1) AS a
) AS g
"""

FILL_DRILLS = """
INSERT INTO drills (app_id, backup_id, run_date, started_at, finished_at, duration, status,
                    restored, error)
SELECT b.app_id, b.id, b.run_date, b.finished_at + interval '1 hour',
       b.finished_at + interval '1 hour 3 minutes', interval '3 minutes',
       CASE WHEN b.id %% 20 = 0 THEN 'failed' ELSE 'passed' END,
       '{"tables": 12, "rows": 400000}'::jsonb,
       CASE WHEN b.id %% 20 = 0 THEN 'table public.orders: 0 rows, the manifest says 12' END
FROM generate_series(0, %(nights)s - 1) AS n
CROSS JOIN generate_series(0, %(drills)s - 1) AS k
JOIN backups AS b
  ON b.id = n * %(apps)s + ((n * 37 + k * 997) %% %(apps)s) + 1 AND b.status = 'succeeded'
"""

FILL_NIGHTS = """
INSERT INTO nightly_runs (run_date, status, created_at, started_at, finished_at, planned,
                          succeeded, failed, skipped)
SELECT run_date, CASE WHEN count(*) FILTER (WHERE status = 'failed') > 0
                      THEN 'incomplete' ELSE 'complete' END,
       min(created_at), min(started_at), max(finished_at), count(*),
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'failed'), 0
FROM backups GROUP BY run_date
"""

# The baseline of `prune --dry-run`: the rows [retention] drops, in one statement. Per
# app: the newest keep_daily nights, the newest night of each of the newest
# keep_weekly ISO weeks and keep_monthly months are kept; and every backup of an app
# whose latest drill failed or whose newest backup carries a warning.
RAW_PRUNE = """
WITH doubted AS (
    SELECT app_id FROM drills AS d
    WHERE status = 'failed'
      AND NOT EXISTS (SELECT 1 FROM drills AS e WHERE e.app_id = d.app_id
                      AND (e.started_at, e.id) > (d.started_at, d.id))
    UNION
    SELECT app_id FROM (
        SELECT DISTINCT ON (app_id) app_id, warning FROM backups
        WHERE trigger = 'nightly' AND status = 'succeeded'
        ORDER BY app_id, run_date DESC) AS newest
    WHERE warning IS NOT NULL
), ranked AS (
    SELECT id, app_id, run_date, size_bytes,
           row_number() OVER (PARTITION BY app_id ORDER BY run_date DESC) AS daily,
           row_number() OVER (PARTITION BY app_id, to_char(run_date, 'IYYY-IW')
                              ORDER BY run_date DESC) AS in_week,
           dense_rank() OVER (PARTITION BY app_id
                              ORDER BY to_char(run_date, 'IYYY-IW') DESC) AS week,
           row_number() OVER (PARTITION BY app_id, date_trunc('month', run_date)
                              ORDER BY run_date DESC) AS in_month,
           dense_rank() OVER (PARTITION BY app_id
                              ORDER BY date_trunc('month', run_date) DESC) AS month
    FROM backups WHERE trigger = 'nightly' AND status = 'succeeded'
      AND app_id NOT IN (SELECT app_id FROM doubted)
)
SELECT id, app_id, run_date, size_bytes FROM ranked
WHERE NOT (daily <= %(keep_daily)s
           OR (in_week = 1 AND week <= %(keep_weekly)s)
           OR (in_month = 1 AND month <= %(keep_monthly)s))
ORDER BY app_id, run_date DESC
"""


# -- the two ledgers ----------------------------------------------------------------------


@dataclass
class Book:
    """One ledger of the benchmark: its schema, its Ledger, its CLI environment."""

    name: str
    schema: str
    url: str
    ledger: Ledger
    env: dict[str, str]
    apps: int
    last_night: date  # the latest night built; the nightly steps plan the nights after
    next_night: date = date.min
    claims: list[Claim] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)

    def conn(self) -> Conn:
        return psycopg.connect(self.url, autocommit=True, options=f"-c search_path={self.schema}")


def build(book: Book, apps: int, nights: int, root: str) -> None:
    """Fill the ledger with `nights` nights ending at its last night (see FILL_*)."""
    first = book.last_night - timedelta(days=nights - 1)
    with book.conn() as conn:
        # The real indexes, built once at the end: far faster than kept up row by row.
        conn.execute("SET maintenance_work_mem = '256MB'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = 'backups' AND indexname <> 'backups_pkey'"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        for lo in range(0, nights, NIGHTS_PER_STATEMENT):
            hi = min(nights, lo + NIGHTS_PER_STATEMENT) - 1
            conn.execute(
                FILL_BACKUPS.encode(),
                {
                    "apps": apps,
                    "lo": lo,
                    "hi": hi,
                    "first": first,
                    "last": nights - 1,
                    "root": root,
                },
            )
        for _, definition in indexes:
            conn.execute(definition.encode())
        conn.execute(
            FILL_DRILLS.encode(), {"nights": nights, "drills": DRILLS_PER_NIGHT, "apps": apps}
        )
        conn.execute(FILL_NIGHTS.encode())
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('backups', 'id'), (SELECT max(id) FROM backups))"
        )
        conn.execute("VACUUM (ANALYZE) backups")
        conn.execute("VACUUM (ANALYZE) drills")
        conn.execute("VACUUM (ANALYZE) nightly_runs")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def cli_env(url: str, schema: str, registry: Path, storage: str, workdir: Path) -> dict[str, str]:
    """The environment of a `backupctl` run on one ledger (nothing else may steer it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUPCTL_", "AWS_", "PG"))}
    config = workdir / "backupctl.toml"
    config.write_text("# empty: every setting comes from the environment\n")
    env.update(
        BACKUPCTL_CONFIG=str(config),
        BACKUPCTL_DATABASE_URL=url,
        BACKUPCTL_DATABASE_SCHEMA=schema,
        BACKUPCTL_REGISTRY=str(registry),
        BACKUPCTL_STORAGE=storage,
        PYTHONPATH=str(REPO),
    )
    return env


def write_registry(path: Path, apps: int) -> None:
    path.write_text(
        "".join(
            f'[[app]]\nid = "app-{a:05d}"\nkind = "command"\nargv = ["true"]\n\n'
            for a in range(apps)
        )
    )


# -- the operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One thing an operator (or the nightly job) does: `run` does it once on a ledger."""

    name: str
    run: Callable[[Book, Path], object]
    note: str = ""


def cli(*args: str, codes: tuple[int, ...] = (0,)) -> Callable[[Book, Path], object]:
    """The real `backupctl ARGS` in a child process, its output kept in a file;
    `{night}` in an argument is the ledger's latest night."""

    def run(book: Book, workdir: Path) -> object:
        argv = [a.replace("{night}", book.last_night.isoformat()) for a in args]
        out = workdir / f"{book.name}.out"
        with out.open("wb") as fh:
            proc = subprocess.run(
                [sys.executable, "-m", "backupctl", *argv],
                env=book.env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.PIPE,
                check=False,
            )
        if proc.returncode not in codes:
            tail = out.read_text(errors="replace")[-1000:] + proc.stderr.decode()[-1000:]
            raise RuntimeError(f"backupctl {' '.join(argv)} exited {proc.returncode}:\n{tail}")
        return proc.returncode

    return run


def plan(book: Book, workdir: Path) -> object:
    book.next_night += timedelta(days=1)
    return book.ledger.plan(book.next_night, [f"app-{a:05d}" for a in range(book.apps)])


def claim(book: Book, workdir: Path) -> object:
    while got := book.ledger.claim_nightly(
        book.next_night, OWNER, CLAIM_BATCH, LEASE_SECONDS, MAX_ATTEMPTS
    ):
        book.claims.extend(got)
    if len(book.claims) != book.apps:
        sys.exit(f"bench/history.py: {book.name}: claimed {len(book.claims)} of {book.apps}")
    return len(book.claims)


def finish(book: Book, workdir: Path) -> object:
    done = 0
    for c in book.claims[:FINISH_SAMPLE]:
        key = f"{c.app_id}/{c.run_date}/{c.app_id}-{c.run_date}-b{c.id}-a{c.attempt}.dump.zst"
        done += book.ledger.finish_succeeded(c, OWNER, f"file:///nowhere/{key}", 4096, "0" * 64)
    return done


def finish_the_rest(book: Book) -> None:
    """Untimed: the night's other claims succeed (one statement), the night closes."""
    with book.conn() as conn:
        conn.execute(
            "UPDATE backups SET status = 'succeeded', finished_at = now(), lease_owner = NULL,"
            " lease_expires_at = NULL, artifact_uri = 'file:///nowhere/' || id,"
            " size_bytes = 4096, sha256 = repeat('0', 64)"
            " WHERE run_date = %s AND status = 'running'",
            [book.next_night],
        )
    book.claims.clear()
    book.ledger.close_night(book.next_night)


def verify_selection(book: Book, workdir: Path) -> object:
    return len(book.ledger.succeeded_backups(book.last_night, None))


# What is compared, history against current: read-only operations first (on the
# ledgers as built), then the nightly job's steps, one new night per round.
READS = [
    Operation("status", cli("status", "--date", "{night}")),
    # The night's few failed backups make it CRITICAL (exit 2), on both ledgers.
    Operation("check", cli("check", "--date", "{night}", codes=(0, 1, 2))),
    Operation("runs --last 30", cli("runs", "--last", "30")),
    Operation("verify selection", verify_selection, "ledger.succeeded_backups(latest night)"),
]
NIGHTLY = [
    Operation("plan", plan, "ledger.plan(a new night, every app)"),
    Operation("claim", claim, f"ledger.claim_nightly(limit={CLAIM_BATCH}) until none is left"),
    Operation("finish", finish, f"ledger.finish_succeeded of {FINISH_SAMPLE:,} claims"),
]
# The views of many nights. A ledger of one night cannot show 30, so their baseline
# is a ledger of exactly the nights they show (SHOWN_NIGHTS): the same page, the same
# grid; what the year of history costs is what the nights not shown add.
SHOWN_NIGHTS = 30
VIEWS = [
    Operation("runs --grid", cli("runs", "--grid", "--last", str(SHOWN_NIGHTS))),
    Operation("report --html", cli("report", "--html", "report.html", "--last", str(SHOWN_NIGHTS))),
]


def measure(op: Operation, books: Sequence[Book], workdir: Path, i: int) -> None:
    """Run `op` once on each ledger (which goes first alternates with `i`), timed."""
    for book in books if i % 2 == 0 else books[::-1]:
        started = time.perf_counter()
        op.run(book, workdir)
        book.times.setdefault(op.name, []).append(time.perf_counter() - started)


# -- prune -----------------------------------------------------------------------------------


def raw_prune_listing(book: Book, out: Path) -> tuple[float, int]:
    """The baseline of prune --dry-run: RAW_PRUNE's rows, written as prune's lines."""
    started = time.perf_counter()
    n = 0
    with book.conn() as conn, out.open("w") as fh, conn.cursor() as cur:
        cur.execute(RAW_PRUNE.encode(), RETENTION)
        for row in cur:
            fh.write(f"would prune {row[1]} {row[2]} (b{row[0]}, {row[3]} B)\n")
            n += 1
        fh.write(f"would prune {n} backups\n")
    return time.perf_counter() - started, n


def last_count(out: Path, verb: str) -> int:
    """The N of prune's last line, `<verb> N backups, kept K`."""
    with out.open("rb") as fh:
        fh.seek(max(0, out.stat().st_size - 4096))
        last = fh.read().decode(errors="replace").strip().splitlines()[-1]
    if not last.startswith(verb + " "):
        raise RuntimeError(f"prune ended with {last!r}")
    return int(last.removeprefix(verb + " ").split()[0])


def prune_dry_run(book: Book, workdir: Path) -> float:
    """prune --dry-run on the history against the least that listing its rows takes
    (on the current ledger it has nothing to list); the counts must agree."""
    dry: list[float] = []
    raw: list[float] = []
    for i in range(PRUNE_RUNS):
        if i % 2:
            raw.append(raw_prune_listing(book, workdir / "raw.out")[0])
        started = time.perf_counter()
        cli("prune", "--dry-run")(book, workdir)
        dry.append(time.perf_counter() - started)
        if i % 2 == 0:
            raw.append(raw_prune_listing(book, workdir / "raw.out")[0])
        listed, expected = (
            last_count(workdir / "history.out", "would prune"),
            last_count(workdir / "raw.out", "would prune"),
        )
        if listed != expected:
            sys.exit(f"bench/history.py: prune --dry-run lists {listed}, the raw {expected}")
    return line(
        "prune --dry-run", dry, raw, "raw    ", f"{expected:,} rows; raw: one SQL statement"
    )


def real_prune(book: Book, workdir: Path, nights: int) -> None:
    """A real prune of the oldest REAL_PRUNE_NIGHTS nights (a few hundred thousand
    backups, not 3.45 million: minutes of the benchmark), as rows per second."""
    keep = {
        "BACKUPCTL_RETENTION_KEEP_DAILY": str(nights - REAL_PRUNE_NIGHTS),
        "BACKUPCTL_RETENTION_KEEP_WEEKLY": "0",
        "BACKUPCTL_RETENTION_KEEP_MONTHLY": "0",
    }
    pruning = Book(**{**book.__dict__, "env": {**book.env, **keep}, "times": {}})
    started = time.perf_counter()
    cli("prune")(pruning, workdir)
    seconds = time.perf_counter() - started
    said = last_count(workdir / "history.out", "pruned")
    with book.conn() as conn:
        row = conn.execute("SELECT count(*) FROM backups WHERE status = 'pruned'").fetchone()
    pruned = int(row[0]) if row else 0
    if pruned != said or not pruned:
        sys.exit(f"bench/history.py: prune said {said} pruned, the ledger holds {pruned}")
    print(
        f"{'prune':<18} history {seconds:8.3f}s: {pruned:,} backups of the oldest"
        f" {REAL_PRUNE_NIGHTS} nights, {pruned / seconds:,.0f} rows/s"
    )


# -- main --------------------------------------------------------------------------------------


def line(name: str, ours: list[float], base: list[float], base_name: str, note: str) -> float:
    t, b = statistics.median(ours), statistics.median(base)
    ratio = t / b
    ok = "ok" if ratio <= MAX_RATIO else "MISSED"
    print(
        f"{name:<18} history {t:8.3f}s | {base_name:<7} {b:8.3f}s | x{ratio:.2f}"
        f" ({ok}){'  ' + note if note else ''}"
    )
    return ratio


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--apps", type=int, default=10_000, help="apps (10000)")
    parser.add_argument("--nights", type=int, default=365, help="nights of history (365)")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per side (5)")
    parser.add_argument("--no-prune", action="store_true", help="skip the real prune")
    args = parser.parse_args(argv)
    if args.apps < 1 or args.nights < 2 or args.repeat < 1:
        parser.error("--apps and --repeat must be at least 1, --nights at least 2")
    return args


@contextlib.contextmanager
def ledger_schemas(url: str) -> Iterator[list[tuple[str, str]]]:
    """(name, schema) of the ledgers: new schemas, dropped at the end."""
    suffix = uuid.uuid4().hex[:8]
    names = [(name, f"bench_{name}_{suffix}") for name in ("history", "current", "shown")]
    try:
        yield names
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            for _, name in names:
                admin.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


def run(url: str, args: argparse.Namespace) -> float:
    last_night = datetime.now(UTC).date() - timedelta(days=1)
    ratios: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-history-")))
        storage = workdir / "storage"
        storage.mkdir()
        registry = workdir / "apps.toml"
        write_registry(registry, args.apps)
        books = []
        for (name, schema), nights in zip(
            stack.enter_context(ledger_schemas(url)),
            (args.nights, 1, min(SHOWN_NIGHTS, args.nights)),
            strict=True,
        ):
            ledger = connect_ledger(url, schema)
            stack.callback(ledger.close)
            env = cli_env(url, schema, registry, storage.as_uri(), workdir)
            book = Book(name, schema, url, ledger, env, args.apps, last_night, last_night)
            started = time.perf_counter()
            build(book, args.apps, nights, storage.as_uri() + "/")
            print(
                f"built {name}: {args.apps} apps x {nights} nights in"
                f" {time.perf_counter() - started:.0f}s",
                flush=True,
            )
            books.append(book)
        history, current, shown = books
        with history.conn() as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(
            f"server {redact_url(url)} (Postgres {version[0] if version else '?'});"
            f" medians of {args.repeat} runs per ledger after a warm-up"
        )

        def report(op: Operation, base: Book = current) -> None:
            ratios[op.name] = line(
                op.name, history.times[op.name], base.times[op.name], base.name, op.note
            )

        for ops, pair in ((READS, [history, current]), (VIEWS, [history, shown])):
            for op in ops:
                measure(op, pair, workdir, 1)  # the warm-up
                for book in pair:
                    book.times.pop(op.name)
                for i in range(args.repeat):
                    measure(op, pair, workdir, i)
                report(op, pair[1])
        for i in range(args.repeat + 1):  # the first night is the warm-up
            for op in NIGHTLY:
                measure(op, [history, current], workdir, i)
            for book in (history, current):
                finish_the_rest(book)
        for op in NIGHTLY:
            for book in (history, current):
                del book.times[op.name][0]
            report(op)

        ratios["prune --dry-run"] = prune_dry_run(history, workdir)
        if not args.no_prune:
            real_prune(history, workdir, args.nights + args.repeat + 1)  # and the new nights
    worst = max(ratios, key=lambda k: ratios[k])
    print(f"worst: {worst}")
    return ratios[worst]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with database_url("backupctl-bench-history-") as url:
            ratio = run(url, args)
    except KeyboardInterrupt:
        print("bench/history.py: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
