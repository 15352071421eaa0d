"""The tables of a real pg_dump archive, read from its TOC as it streams past, are
those `pg_restore --list` lists; what can't be read leaves them unknown."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from backupctl.kinds.pgtoc import TocTee, read_tables
from backupctl.kinds.pgtools import embedded_bin_dir


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes, /) -> int:
        self.data += data
        return len(data)


def dump(dsn: str) -> bytes:
    bin_dir = embedded_bin_dir()
    assert bin_dir is not None
    argv = [str(bin_dir / "pg_dump"), "--format=custom", "--compress=0", f"--dbname={dsn}"]
    return subprocess.run(argv, capture_output=True, check=True).stdout


def listed_tables(archive: bytes) -> list[str]:
    """pg_restore --list's TABLE entries, as schema.name."""
    bin_dir = embedded_bin_dir()
    assert bin_dir is not None
    out = subprocess.run(
        [str(bin_dir / "pg_restore"), "--list"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    found = []
    for line in out.splitlines():  # "217; 1259 16389 TABLE public Odd name postgres"
        if line.startswith(";") or line.count(" ") < 3:
            continue
        entry = line.split(" ", 3)[3]
        if entry.startswith("TABLE ") and not entry.startswith(("TABLE DATA", "TABLE ATTACH")):
            schema, tail = entry.removeprefix("TABLE ").split(" ", 1)
            found.append(f"{schema}.{tail.rsplit(' ', 1)[0]}")
    return sorted(found)


@pytest.fixture
def shop(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA sales;"
            "CREATE TABLE sales.orders (id int PRIMARY KEY, note text);"
            "INSERT INTO sales.orders SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g;"
            'CREATE TABLE public."Odd name" (x int);'
            "CREATE TABLE public.events (at int) PARTITION BY RANGE (at);"
            "CREATE TABLE public.events_1 PARTITION OF public.events FOR VALUES FROM (0) TO (9);"
            "CREATE VIEW public.recent AS SELECT 1 AS one;"
            "COMMENT ON TABLE sales.orders IS 'the orders';"
        )
    return database_url


def test_the_tables_read_while_streaming_are_those_pg_restore_lists(shop: str) -> None:
    archive = dump(shop)
    sink = Sink()
    tee = TocTee(sink)
    for start in range(0, len(archive), 997):  # odd chunks: a TOC cut anywhere
        tee.write(archive[start : start + 997])

    tables = tee.finish()

    assert bytes(sink.data) == archive  # passed on untouched
    assert tables is not None
    assert sorted(tables) == listed_tables(archive)
    assert sorted(tables) == [
        "public.Odd name",
        "public.events",
        "public.events_1",
        "sales.orders",
    ]


def test_a_database_without_tables_has_an_empty_toc_of_tables(database_url: str) -> None:
    assert read_tables(dump(database_url)) == ()


def test_an_archive_cut_inside_its_toc_or_too_large_a_toc_leaves_the_tables_unknown(
    shop: str,
) -> None:
    archive = dump(shop)
    cut = TocTee(Sink())
    cut.write(archive[:200])
    assert cut.finish() is None
    assert cut.problem == "the archive ended inside its table of contents"

    small = TocTee(Sink(), limit=100)
    small.write(archive)
    assert small.finish() is None
    assert small.problem is not None and "larger than" in small.problem


def test_what_is_not_a_custom_archive_leaves_the_tables_unknown() -> None:
    tee = TocTee(Sink())
    tee.write(b"-- PostgreSQL database dump\n" * 10)
    assert tee.finish() is None
    assert tee.problem == "not a pg_dump custom-format archive"
