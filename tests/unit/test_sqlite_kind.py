"""The sqlite kind against real SQLite files: the copy, its manifest, its temporary
files, and what it says about a path that is no database."""

from __future__ import annotations

import fcntl
import io
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, Cancelled
from backupctl.kinds import sqlitecopy
from backupctl.kinds.sqlite import SqliteKind
from backupctl.registry import App, load_registry


@pytest.fixture(autouse=True)
def own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The copies go beneath this test's own temporary directory."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    return tmp


def make_db(path: Path, rows: int = 1000, mode: str = "delete") -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA journal_mode={mode}")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute('CREATE TABLE "odd ""name""" (x)')
        conn.executemany(
            "INSERT INTO notes (body) VALUES (?)", [(f"n{i}" * 20,) for i in range(rows)]
        )
        conn.execute('INSERT INTO "odd ""name""" VALUES (1)')
    conn.close()
    return path


def app(path: Path) -> App:
    return App("notes", "sqlite", {"path": str(path)})


def dump(path: Path, cancel: CancelToken | None = None) -> tuple[bytes, dict[str, object]]:
    out = io.BytesIO()
    result = SqliteKind().dump(app(path), out, cancel or CancelToken())
    assert result.written_by is not None and result.written_by.startswith("sqlite 3.")
    assert result.empty is None
    return out.getvalue(), dict(result.manifest)


def copies(tmp: Path) -> list[str]:
    return sorted(os.listdir(tmp / f"backupctl-sqlite-{os.geteuid()}"))


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_the_dump_is_the_database_with_its_tables_and_rows_in_the_manifest(
    tmp_path: Path, own_tmpdir: Path, mode: str
) -> None:
    source = make_db(tmp_path / "notes.db", rows=3000, mode=mode)

    data, manifest = dump(source)

    copy = tmp_path / "copy.db"
    copy.write_bytes(data)
    with sqlite3.connect(source) as a, sqlite3.connect(copy) as b:
        assert list(a.iterdump()) == list(b.iterdump())
        assert b.execute("PRAGMA journal_mode").fetchone()[0] == mode  # kept
    assert manifest["tables"] == 2
    assert manifest["table_names"] == ["notes", 'odd "name"']
    assert manifest["table_rows"] == {"notes": 3000, 'odd "name"': 1}
    assert manifest["rows"] == 3001
    assert len(str(manifest["sha256"])) == 64
    assert copies(own_tmpdir) == []  # nothing left behind


def test_a_database_without_tables_is_an_empty_backup(tmp_path: Path) -> None:
    source = tmp_path / "empty.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE VIEW v AS SELECT 1")

    result = SqliteKind().dump(app(source), io.BytesIO(), CancelToken())

    assert result.empty == "the database has no tables"
    assert result.manifest["tables"] == 0


def test_a_missing_path_a_folder_and_a_file_that_is_no_database_fail_clearly(
    tmp_path: Path,
) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("not a database, but long enough to be read as one" * 100)
    expected = {
        tmp_path / "gone.db": f"path {tmp_path / 'gone.db'} does not exist",
        tmp_path: f"path {tmp_path} is not a file",
        other: f"cannot read {other}: it is not a SQLite database",
    }
    for path, message in expected.items():
        with pytest.raises(BackupFailed) as excinfo:
            SqliteKind().dump(app(path), io.BytesIO(), CancelToken())
        assert str(excinfo.value) == message
        assert SqliteKind().preflight(app(path)) == [
            message.replace(f"cannot read {other}: it", f"path {other}")
        ]
    assert SqliteKind().preflight(app(make_db(tmp_path / "ok.db"))) == []


def test_a_cancelled_copy_stops_and_leaves_no_file(tmp_path: Path, own_tmpdir: Path) -> None:
    source = make_db(tmp_path / "notes.db")
    cancel = CancelToken()
    cancel.cancel("lease lost")

    with pytest.raises(Cancelled, match="lease lost"):
        dump(source, cancel)

    assert copies(own_tmpdir) == []


def test_a_copy_whose_source_keeps_changing_ends_holding_the_read_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Steps of one page and a write after every step: each step restarts the copy.
    monkeypatch.setattr(sqlitecopy, "STEP_PAGES", 1)
    source = make_db(tmp_path / "notes.db", rows=2000)
    writer = sqlite3.connect(source, check_same_thread=False, timeout=60)
    steps = 0
    original_run = sqlitecopy._run

    def run(src: sqlite3.Connection, dst: sqlite3.Connection, path: Path, progress: object) -> None:
        def write_then(status: int, left: int, total: int) -> None:
            nonlocal steps
            steps += 1
            if not src.in_transaction:  # only while the lock is let go between steps
                writer.execute("INSERT INTO notes (body) VALUES ('more')")
                writer.commit()
            progress(status, left, total)  # type: ignore[operator]

        original_run(src, dst, path, write_then)

    monkeypatch.setattr(sqlitecopy, "_run", run)

    with caplog.at_level("INFO", logger="backupctl.kinds.sqlitecopy"):
        data, manifest = dump(source)

    writer.close()
    assert steps > sqlitecopy.MAX_RESTARTS
    assert "copying it holding its read lock" in caplog.text
    copy = tmp_path / "copy.db"
    copy.write_bytes(data)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (rows,) = conn.execute("SELECT count(*) FROM notes").fetchone()
    assert manifest["table_rows"] == {"notes": rows, 'odd "name"': 1}
    assert rows >= 2000 + sqlitecopy.MAX_RESTARTS


def test_a_copy_left_by_a_killed_backup_is_removed_by_the_next(
    tmp_path: Path, own_tmpdir: Path
) -> None:
    folder = sqlitecopy.copies_folder()
    dead = folder / "copy-dead.sqlite"
    dead.write_bytes(b"half a copy")
    (folder / "copy-dead.sqlite-journal").write_bytes(b"j")
    (folder / "copy-gone.sqlite-wal").write_bytes(b"w")  # its copy already removed
    running = folder / "copy-running.sqlite"
    running.write_bytes(b"a copy being made")
    held = os.open(running, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        dump(make_db(tmp_path / "notes.db"))
        assert copies(own_tmpdir) == ["copy-running.sqlite"]  # locked: someone's at work
    finally:
        os.close(held)


def test_the_copies_folder_must_be_this_users_and_closed_to_others(own_tmpdir: Path) -> None:
    folder = sqlitecopy.copies_folder()
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)

    with pytest.raises(BackupFailed, match="not a folder of this user's, closed to others"):
        sqlitecopy.copies_folder()


def test_the_registry_takes_a_path_relative_to_itself(tmp_path: Path) -> None:
    registry = tmp_path / "apps.toml"
    registry.write_text('[[app]]\nid = "notes"\nkind = "sqlite"\npath = "data/notes.db"\n')

    [found] = load_registry(str(registry))

    assert found.params == {"path": str(tmp_path / "data" / "notes.db")}


def test_the_copy_runs_while_another_thread_writes(tmp_path: Path) -> None:
    source = make_db(tmp_path / "notes.db", rows=5000, mode="wal")
    stop = threading.Event()

    def write() -> None:
        with sqlite3.connect(source, timeout=60) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO notes (body) VALUES ('w')")
                conn.commit()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        data, manifest = dump(source)
    finally:
        stop.set()
        thread.join()
    copy = tmp_path / "copy.db"
    copy.write_bytes(data)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (rows,) = conn.execute("SELECT count(*) FROM notes").fetchone()
    assert manifest["table_rows"] == {"notes": rows, 'odd "name"': 1}
