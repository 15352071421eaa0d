"""The benchmark database: about N GB of realistic rows, in a scratch database of its own.

Shared by ``bench/backup.py`` and ``bench/drill.py``: customers, orders, events (jsonb)
and text documents, with primary keys and two secondary indexes, sized by
``pg_database_size``. The dump of it compresses about 5:1 with zstd -3.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

# Rows of the `orders` and `events` tables per GB of pg_database_size (measured on
# Postgres 16); customers get a tenth of that, documents a third.
UNITS_PER_GB = 1_480_000
CHUNK_ROWS = 250_000

SCHEMA = """
CREATE TABLE customers (
    id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, country text NOT NULL,
    signed_up date NOT NULL, balance numeric(12,2) NOT NULL, tier smallint NOT NULL);
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL, created_at timestamptz NOT NULL,
    status text NOT NULL, total numeric(12,2) NOT NULL, quantity int NOT NULL, note text);
CREATE TABLE events (
    id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, payload jsonb NOT NULL);
CREATE TABLE documents (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL);
"""

INDEXES = (
    "CREATE INDEX orders_by_customer ON orders (customer_id)",
    "CREATE INDEX events_by_time ON events (occurred_at)",
)

# Deterministic, mixed-entropy rows: repeated words and enums (compress well), md5 hex
# (compresses about 2:1), numbers, dates and jsonb. The dump compresses about 5:1.
FILL = {
    "customers": """
INSERT INTO customers
SELECT g,
       'Customer ' || (ARRAY['Ann','Bob','Cleo','Dirk','Eva','Femke','Gus','Hana'])[1 + g %% 8]
           || ' ' || substr(md5(g::text), 1, 8),
       'user' || g || '@'
           || (ARRAY['example.com','mail.test','shop.invalid','corp.example'])[1 + g %% 4],
       (ARRAY['NL','DE','BE','FR','GB','US','ES','IT','PL','SE'])[1 + (g * 7) %% 10],
       date '2015-01-01' + (g %% 3650)::int,
       ((g * 37) %% 100000) / 100.0,
       (g %% 4)::smallint
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g""",
    "orders": """
INSERT INTO orders
SELECT g, 1 + (g * 13) %% %(customers)s,
       timestamptz '2020-01-01' + g * interval '17 seconds',
       (ARRAY['new','paid','shipped','delivered','returned'])[1 + g %% 5],
       ((g * 7919) %% 500000) / 100.0, 1 + g %% 12,
       CASE WHEN g %% 3 = 0
            THEN 'Leave at the door, ring twice. Ref ' || substr(md5(g::text), 1, 12) END
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g""",
    "events": """
INSERT INTO events
SELECT g, timestamptz '2022-01-01' + g * interval '3 seconds',
       jsonb_build_object(
           'type', (ARRAY['page_view','click','add_to_cart','checkout','login'])[1 + g %% 5],
           'user', 1 + (g * 31) %% 1000000,
           'session', md5((g / 4)::text),
           'ref', substr(md5((g * 11)::text), 1, 20),
           'amount', ((g * 7919) %% 100000) / 100.0,
           'items', jsonb_build_array(g %% 1000, (g * 3) %% 1000, (g * 7) %% 1000),
           'ua', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)',
                        'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)',
                        'curl/8.5.0'])[1 + g %% 3],
           'ok', g %% 17 <> 0)
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g""",
    "documents": """
INSERT INTO documents
SELECT g,
       'Document ' || g || ': '
           || (ARRAY['invoice','contract','manual','report','memo'])[1 + g %% 5],
       'The quick brown fox jumps over the lazy dog. ' || md5(g::text) || md5((g * 3)::text)
           || ' ' || md5((g * 5)::text) || ' '
           || repeat((ARRAY['Lorem ipsum dolor sit amet, consectetur adipiscing elit. ',
                            'Sed do eiusmod tempor incididunt ut labore et dolore magna. ',
                            'Ut enim ad minim veniam, quis nostrud exercitation. '])[1 + g %% 3],
                     (1 + g %% 3)::int)
           || md5((g * 7)::text) || ' ' || md5((g * 13)::text) || md5((g * 17)::text)
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g""",
}


def table_rows(size_gb: float) -> dict[str, int]:
    """Rows per table for a database of about `size_gb` GB."""
    units = max(10_000, int(size_gb * UNITS_PER_GB))
    return {
        "customers": units // 10,
        "orders": units,
        "events": units,
        "documents": units // 3,
    }


def database_size(dsn: str) -> int:
    """pg_database_size of the database `dsn` names, in bytes."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def generate(dsn: str, size_gb: float) -> None:
    """Fill an empty database with about `size_gb` GB, in parallel chunks; then index,
    VACUUM (so no hint-bit writes land in a measured dump) and CHECKPOINT."""
    rows = table_rows(size_gb)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    jobs = [
        (name, lo, min(count, lo + CHUNK_ROWS - 1))
        for name, count in rows.items()
        for lo in range(1, count + 1, CHUNK_ROWS)
    ]

    def fill(job: tuple[str, int, int]) -> None:
        name, lo, hi = job
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(FILL[name].encode(), {"lo": lo, "hi": hi, "customers": rows["customers"]})

    pool = ThreadPoolExecutor(min(4, os.cpu_count() or 2))
    try:
        for _ in pool.map(fill, jobs):
            pass
    finally:  # on Ctrl-C: start no more chunks
        pool.shutdown(wait=True, cancel_futures=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in INDEXES:
            conn.execute(statement.encode())
        conn.execute("VACUUM (ANALYZE)")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


@contextlib.contextmanager
def scratch_database(url: str, prefix: str) -> Iterator[str]:
    """A new, uniquely named database on the server; dropped (connections and all) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(url, dbname=name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
