"""The sqlite kind through the real CLI: a copy taken while the app (a real process)
keeps writing is consistent and restores to the same data; restore is atomic and
careful with an existing file; drill checks integrity, tables, rows and bytes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from tests.conftest import Setup, kill_tree, wait_for

NIGHT = "2026-11-28"
APP = str(Path(__file__).with_name("sqlite_app.py"))


def seed(path: Path, mode: str, orders: int = 30_000) -> Path:
    """A shop database in journal mode `mode`, with `orders` consistent orders."""
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA journal_mode={mode}")
        conn.executescript(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL, note TEXT);"
            "CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL,"
            " amount INTEGER NOT NULL);"
            "CREATE INDEX lines_by_order ON lines (order_id);"
            "CREATE TABLE counter (orders INTEGER NOT NULL);"
        )
        conn.executemany(
            "INSERT INTO orders (id, total, note) VALUES (?, 600, ?)",
            [(i, "seeded " * 20) for i in range(1, orders + 1)],
        )
        conn.executemany(
            "INSERT INTO lines (order_id, amount) VALUES (?, ?)",
            [(i, amount) for i in range(1, orders + 1) for amount in (100, 200, 300)],
        )
        conn.execute("INSERT INTO counter VALUES (?)", (orders,))
    conn.close()
    return path


def registry(setup: Setup, path: Path, app_id: str = "shop") -> None:
    setup.write_registry(f'[[app]]\nid = "{app_id}"\nkind = "sqlite"\npath = "{path}"\n')


def orders(path: Path) -> int:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=60) as conn:
        (n,) = conn.execute("SELECT count(*) FROM orders").fetchone()
    conn.close()
    return int(n)


def assert_consistent(path: Path) -> int:
    """The invariants of sqlite_app.py hold in `path`; returns its number of orders."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (n, top) = conn.execute("SELECT count(*), max(id) FROM orders").fetchone()
        assert n == top  # no order missing in between
        assert conn.execute("SELECT orders FROM counter").fetchone() == (n,)
        unbalanced = conn.execute(
            "SELECT count(*) FROM orders o WHERE o.total !="
            " (SELECT sum(amount) FROM lines l WHERE l.order_id = o.id)"
        ).fetchone()
        assert unbalanced == (0,)
        assert conn.execute("SELECT count(*) FROM lines").fetchone() == (3 * n,)
    conn.close()
    return int(n)


def table_digest(path: Path, sql: str, *params: object) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for row in conn.execute(sql, params):
            digest.update(repr(row).encode())
    conn.close()
    return digest.hexdigest()


def dump_lines(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        lines = list(conn.iterdump())
    conn.close()
    return lines


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_a_copy_taken_while_the_app_writes_is_consistent_and_restores_its_data(
    setup: Setup, mode: str
) -> None:
    source = seed(setup.root / "shop.db", mode)
    registry(setup, source)
    started, stop = setup.root / "started", setup.root / "stop"
    app = subprocess.Popen(
        [sys.executable, APP, str(source), str(started), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(started.exists, timeout=60)
        night = setup.cli("run-nightly", "--date", NIGHT)
        assert night.returncode == 0, night.stderr
        restored = setup.root / "restored" / "shop.db"
        restored.parent.mkdir()
        back = setup.cli("restore", "shop", "--to", str(restored))
        assert back.returncode == 0, back.stderr
        assert back.stdout.strip().endswith(f"to {restored}")
        n = assert_consistent(restored)
        assert n > 30_000  # the copy has some of what the app wrote
        # The app was never locked out for good: it went on writing after the copy.
        wait_for(lambda: orders(source) > n, timeout=60)
    finally:
        stop.touch()
        written, _ = app.communicate(timeout=120)
    assert app.returncode == 0 and int(written) > 0

    # The copy holds exactly the source's first n orders and their lines.
    assert table_digest(restored, "SELECT * FROM orders ORDER BY id") == table_digest(
        source, "SELECT * FROM orders WHERE id <= ? ORDER BY id", n
    )
    assert table_digest(restored, "SELECT * FROM lines ORDER BY id") == table_digest(
        source, "SELECT * FROM lines WHERE order_id <= ? ORDER BY id", n
    )
    [(manifest,)] = setup.query("SELECT manifest FROM backupctl.backups")
    assert isinstance(manifest, dict)
    assert manifest["table_rows"] == {"counter": 1, "lines": 3 * n, "orders": n}
    assert (manifest["tables"], manifest["rows"]) == (3, 1 + 4 * n)
    assert manifest["sha256"] == hashlib.sha256(restored.read_bytes()).hexdigest()

    drill = setup.cli("drill", "--json")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    [one] = json.loads(drill.stdout)["drills"]
    assert (one["status"], one["restored"]) == ("passed", {"tables": 3, "rows": 1 + 4 * n})

    # Once the app has stopped, a backup restores to the very same database.
    adhoc = setup.cli("backup", "shop")
    assert adhoc.returncode == 0, adhoc.stderr
    [(backup_id,)] = setup.query("SELECT id FROM backupctl.backups WHERE trigger = 'adhoc'")
    quiet = setup.root / "restored" / "quiet.db"
    assert (
        setup.cli("restore", "shop", "--adhoc", str(backup_id), "--to", str(quiet)).returncode == 0
    )
    assert dump_lines(quiet) == dump_lines(source)


def test_restore_refuses_an_existing_file_unless_clean_which_replaces_it_whole(
    setup: Setup,
) -> None:
    source = seed(setup.root / "shop.db", "wal", orders=500)
    registry(setup, source)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    target = setup.root / "live.db"
    target.write_bytes(b"the database the app has now")
    stale_wal = Path(f"{target}-wal")
    stale_wal.write_bytes(b"a write-ahead log of that other database")

    refused = setup.cli("restore", "shop", "--to", str(target))
    assert refused.returncode == 2
    assert (
        f"{target} already exists: restore to a new file, or pass --clean to replace it"
        in refused.stderr
    )
    assert target.read_bytes() == b"the database the app has now"

    replaced = setup.cli("restore", "shop", "--to", str(target), "--clean")
    assert replaced.returncode == 0, replaced.stderr
    assert not stale_wal.exists()  # SQLite would have replayed it into the new file
    assert dump_lines(target) == dump_lines(source)
    assert sorted(p.name for p in setup.root.iterdir() if p.name.startswith(".live")) == []


def test_an_empty_database_is_an_empty_backup_unless_allowed(setup: Setup) -> None:
    empty = setup.root / "empty.db"
    sqlite3.connect(empty).close()
    registry(setup, empty)

    failed = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")

    assert failed.returncode == 1
    assert setup.query("SELECT status, error FROM backupctl.backups") == [
        ("failed", "empty backup: the database has no tables")
    ]
    assert setup.files() == []


def flip(setup: Setup, change: object) -> None:
    """Replace the stored artifact's data by change(data), and make the ledger agree
    with the new bytes: only the drill itself can notice."""
    [(backup_id, uri)] = setup.query("SELECT id, artifact_uri FROM backupctl.backups")
    stored = Path(str(uri).removeprefix("file://"))
    data = zstandard.ZstdDecompressor().decompressobj().decompress(stored.read_bytes())
    assert callable(change)
    blob = zstandard.ZstdCompressor().compress(change(bytearray(data)))
    stored.write_bytes(blob)
    setup.query(
        "UPDATE backupctl.backups SET sha256 = %s, size_bytes = %s WHERE id = %s",
        hashlib.sha256(blob).hexdigest(),
        len(blob),
        backup_id,
    )


def one_drill(setup: Setup) -> dict[str, object]:
    proc = setup.cli("drill", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [one] = json.loads(proc.stdout)["drills"]
    assert one["status"] == "failed"
    assert isinstance(one, dict)
    return one


def test_a_flipped_byte_in_a_row_fails_the_drill(setup: Setup) -> None:
    source = seed(setup.root / "shop.db", "delete", orders=2000)
    registry(setup, source)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    def in_a_note(data: bytearray) -> bytes:
        at = data.rindex(b"seeded ")  # inside a row: the structure stays intact
        data[at] ^= 0x01
        return bytes(data)

    flip(setup, in_a_note)

    one = one_drill(setup)
    assert one["restored"] == {"tables": 3, "rows": 1 + 4 * 2000}  # all rows are there
    assert "the restored database is not the one backed up (its sha256 differs)" in str(
        one["error"]
    )


def test_a_damaged_page_fails_the_drill_on_its_integrity(setup: Setup) -> None:
    source = seed(setup.root / "shop.db", "delete", orders=2000)
    registry(setup, source)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    def a_page_header(data: bytearray) -> bytes:
        page_size = int.from_bytes(data[16:18], "big")
        data[len(data) - page_size] ^= 0xFF  # the last page's b-tree page type
        return bytes(data)

    flip(setup, a_page_header)

    error = str(one_drill(setup)["error"])
    assert error.startswith(("the restored database is damaged", "PRAGMA integrity_check")), error


def test_a_backup_killed_during_the_copy_leaves_a_file_the_next_one_removes(
    setup: Setup,
) -> None:
    tmp = setup.root / "tmp"
    tmp.mkdir()
    setup.env["TMPDIR"] = str(tmp)
    folder = tmp / f"backupctl-sqlite-{os.geteuid()}"
    source = seed(setup.root / "shop.db", "delete", orders=300_000)  # a copy of a while
    registry(setup, source)

    killed = False
    for _ in range(3):  # the kill must land mid-copy; a copy that outran us retries
        proc = setup.start("backup", "shop")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if folder.is_dir() and any(p.suffix == ".sqlite" for p in folder.iterdir()):
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
        kill_tree(proc)
        if killed and any(folder.iterdir()):
            break
        killed = False
    assert killed, "the backup never got to its copy"

    assert setup.cli("backup", "shop").returncode == 0
    assert list(folder.iterdir()) == []
