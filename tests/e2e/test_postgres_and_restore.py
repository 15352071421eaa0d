"""Real backups and restores: pg_dump into file:// and S3, and back, checked byte by byte."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from backupctl.kinds.postgres import embedded_bin_dir
from tests.conftest import S3, Setup, wait_for

NIGHT = "2026-11-28"
CANARY = "canary-pw-Zq81x"
BIN = str(embedded_bin_dir())


def pg_app(app_id: str, env: str = "SHOP_DSN", bin_dir: str = BIN, dsn: str | None = None) -> str:
    """A registry entry for a postgres app whose DSN is in `env` (or given as `dsn`)."""
    source = f'dsn = "{dsn}"' if dsn else f'dsn_env = "{env}"'
    return f'\n[[app]]\nid = "{app_id}"\nkind = "postgres"\n{source}\npg_bin_dir = "{bin_dir}"\n'


def admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def new_db(pg_server_url: str) -> Iterator[object]:
    """A factory of fresh databases on the test server, dropped at the end."""
    made: list[str] = []

    def make(prefix: str = "db") -> str:
        name = f"{prefix}_{os.getpid()}_{len(made)}_{int(time.monotonic() * 1000) % 100000}"
        with admin(pg_server_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return make_conninfo(pg_server_url, dbname=name)

    yield make
    with admin(pg_server_url) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_shop(dsn: str, rows: int = 100_000) -> None:
    """Several tables, about `rows` rows in all, with a few column types."""
    with admin(dsn) as conn:
        conn.execute("""
            CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, created date);
            CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers,
                                 total numeric(12,2), meta jsonb);
            CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
            CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 900;
        """)
        n = rows // 2
        conn.execute(
            "INSERT INTO customers SELECT g, 'customer ' || g, date '2020-01-01' + g %% 1000"
            " FROM generate_series(1, %s) g",
            [n],
        )
        conn.execute(
            "INSERT INTO orders (customer_id, total, meta) SELECT 1 + g %% %s, (g %% 1000) + 0.5,"
            " jsonb_build_object('n', g, 'tag', md5(g::text)) FROM generate_series(1, %s) g",
            [n, rows - n - 1000],
        )
        conn.execute(
            "INSERT INTO blobs SELECT g, decode(md5(g::text) || md5((g * 7)::text), 'hex')"
            " FROM generate_series(1, 1000) g"
        )


def fingerprint(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and an md5 over every row, per table."""
    result = {}
    with admin(dsn) as conn:
        for table in ("customers", "orders", "blobs"):
            row = conn.execute(
                f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {table} t"
            ).fetchone()
            assert row is not None
            result[table] = (int(str(row[0])), str(row[1]))
    return result


def row_of(setup: Setup, app_id: str) -> dict[str, object]:
    found = setup.query(
        "SELECT row_to_json(b)::text FROM backupctl.backups b"
        " WHERE app_id = %s AND run_date = %s AND trigger = 'nightly'",
        app_id,
        NIGHT,
    )
    return dict(json.loads(str(found[0][0])))


def use_storage(setup: Setup, where: str, request: pytest.FixtureRequest) -> S3 | None:
    if where == "file":
        return None
    s3: S3 = request.getfixturevalue("s3")
    setup.env.update(s3.env, BACKUPCTL_STORAGE=f"s3://{s3.bucket}/nightly")
    return s3


@pytest.mark.parametrize("where", ["file", "s3"])
def test_a_postgres_database_round_trips_through_backup_drop_and_restore(
    setup: Setup, new_db: object, where: str, request: pytest.FixtureRequest
) -> None:
    assert callable(new_db)
    use_storage(setup, where, request)
    source = new_db("shop")
    seed_shop(source)
    before = fingerprint(source)
    assert sum(count for count, _ in before.values()) == 100_000
    setup.env["SHOP_DSN"] = source
    setup.write_registry(pg_app("shop"))
    backed = setup.cli("run-nightly", "--date", NIGHT)
    assert backed.returncode == 0, backed.stdout + backed.stderr
    assert str(row_of(setup, "shop")["artifact_uri"]).endswith(".pgdump.zst")

    with admin(source) as conn:  # the disaster
        conn.execute("DROP TABLE blobs, orders, customers CASCADE")
    restored = setup.cli(
        "restore",
        "shop",
        "--date",
        NIGHT,
        "--to",
        "env:SHOP_DSN",
        BACKUPCTL_PG_BIN_DIR=BIN,
    )

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored shop" in restored.stdout
    assert fingerprint(source) == before
    with admin(source) as conn:
        assert conn.execute("SELECT count(*) FROM big_orders").fetchone() is not None


def make_tree(root: Path) -> None:
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("hello\n")
    (root / "docs" / "deep" / "er" / "data.bin").write_bytes(os.urandom(300_000))
    (root / "empty-dir").mkdir()
    (root / "unicode-é.txt").write_text("ünïcode\n")
    (root / "link-to-readme").symlink_to("docs/readme.txt")
    os.chmod(root / "docs" / "readme.txt", 0o640)


def tree(root: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_mode & 0o777,
            )
    return found


@pytest.mark.parametrize("where", ["file", "s3"])
def test_files_and_command_backups_round_trip_byte_for_byte(
    setup: Setup, where: str, request: pytest.FixtureRequest
) -> None:
    use_storage(setup, where, request)
    source = setup.root / "uploads"
    make_tree(source)
    blob = setup.root / "export.bin"
    blob.write_bytes(os.urandom(2_000_000))
    setup.write_registry(f"""
[[app]]
id = "uploads"
kind = "files"
path = "{source}"

[[app]]
id = "export"
kind = "command"
argv = ["cat", "{blob}"]
""")
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    target = setup.root / "restored"
    to_folder = setup.cli("restore", "uploads", "--date", NIGHT, "--to", str(target))
    to_file = setup.cli("restore", "export", "--date", NIGHT, "--to", str(setup.root / "out.bin"))
    to_stdout = subprocess.run(
        [sys.executable, "-m", "backupctl", "restore", "export", "--date", NIGHT, "--to", "-"],
        env=setup.env,
        capture_output=True,
        timeout=60,
        cwd=setup.root,
    )

    assert to_folder.returncode == 0, to_folder.stderr
    assert tree(target) == tree(source)
    assert to_file.returncode == 0, to_file.stderr
    assert (setup.root / "out.bin").read_bytes() == blob.read_bytes()
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == blob.read_bytes()


def test_restore_refuses_a_target_that_is_not_empty_unless_clean(
    setup: Setup, new_db: object
) -> None:
    assert callable(new_db)
    source = new_db("shop")
    seed_shop(source, rows=2_000)
    before = fingerprint(source)
    setup.env["SHOP_DSN"] = source
    setup.write_registry(pg_app("shop"))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    with admin(source) as conn:
        conn.execute("DELETE FROM blobs")

    refused = setup.cli(
        "restore", "shop", "--date", NIGHT, "--to", "env:SHOP_DSN", BACKUPCTL_PG_BIN_DIR=BIN
    )
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr and "--clean" in refused.stderr
    assert fingerprint(source)["blobs"][0] == 0

    cleaned = setup.cli(
        "restore",
        "shop",
        "--date",
        NIGHT,
        "--to",
        "env:SHOP_DSN",
        "--clean",
        BACKUPCTL_PG_BIN_DIR=BIN,
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert fingerprint(source) == before

    folder = setup.root / "not-empty"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    setup.write_registry(
        setup.registry.read_text() + f'[[app]]\nid = "up"\nkind = "files"\npath = "{folder}"\n'
    )
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    into_full = setup.cli("restore", "up", "--date", NIGHT, "--to", str(folder))
    assert into_full.returncode == 2
    assert "not an empty folder" in into_full.stderr


@pytest.mark.parametrize("where", ["file", "s3"])
def test_restore_refuses_an_artifact_with_one_corrupt_byte(
    setup: Setup, new_db: object, where: str, request: pytest.FixtureRequest
) -> None:
    assert callable(new_db)
    s3 = use_storage(setup, where, request)
    source = new_db("shop")
    seed_shop(source, rows=2_000)
    setup.env["SHOP_DSN"] = source
    data = setup.root / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha " * 1000)
    setup.write_registry(
        pg_app("shop")
        + f"""
[[app]]
id = "data"
kind = "files"
path = "{data}"
"""
    )
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    for app in ("shop", "data"):
        uri = str(row_of(setup, app)["artifact_uri"])
        if s3 is None:
            path = Path(uri.removeprefix("file://"))
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0x01
            path.write_bytes(bytes(raw))
        else:
            key = uri.removeprefix(f"s3://{s3.bucket}/")
            raw = bytearray(s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
            raw[len(raw) // 2] ^= 0x01
            s3.client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(raw))

    empty = new_db("target")
    setup.env["TARGET_DSN"] = empty
    into_db = setup.cli(
        "restore", "shop", "--date", NIGHT, "--to", "env:TARGET_DSN", BACKUPCTL_PG_BIN_DIR=BIN
    )
    into_folder = setup.cli("restore", "data", "--date", NIGHT, "--to", str(setup.root / "out"))

    for result in (into_db, into_folder):
        assert result.returncode == 1
        assert "restore failed: checksum mismatch" in result.stderr
    with admin(empty) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
    assert not (setup.root / "out").exists()
    audit = setup.query(
        "SELECT exit_code FROM backupctl.invocations WHERE command = 'restore' ORDER BY id"
    )
    assert audit == [(1,), (1,)]


def pg_dump_processes(dbname: str) -> list[tuple[int, bytes]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pg_dump" in cmdline.split(b"\0")[0] and dbname.encode() in cmdline:
            found.append((int(entry), cmdline))
    return found


def test_a_password_never_reaches_argv_logs_the_ledger_or_status(
    setup: Setup, new_db: object, pg_server_url: str
) -> None:
    assert callable(new_db)
    with admin(pg_server_url) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'canary') THEN"
            f" CREATE ROLE canary LOGIN SUPERUSER PASSWORD '{CANARY}'; END IF; END $$"
        )
    source = new_db("shop")
    seed_shop(source, rows=60_000)
    dbname = conninfo_to_dict(source)["dbname"]
    dsn = make_conninfo(source, user="canary", password=CANARY)
    broken = make_conninfo(source, user="canary", password=CANARY, dbname="no_such_db")
    setup.env["BROKEN_DSN"] = broken
    setup.write_registry(pg_app("shop", dsn=dsn) + pg_app("broken", env="BROKEN_DSN"))
    seen: list[bytes] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.extend(cmd for _, cmd in pg_dump_processes(str(dbname)))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    # pg_dump waits for this lock, so it is surely seen running, however loaded the machine.
    holder = psycopg.connect(source)
    holder.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
    try:
        proc = setup.start("-vv", "run-nightly", "--date", NIGHT)
        wait_for(lambda: bool(seen), timeout=60)
        holder.commit()
        out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
        done.set()
        watcher.join()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    status = setup.cli("status", "--date", NIGHT, "--json")

    assert result.returncode == 1  # "broken" fails
    assert seen, "pg_dump was never caught running: the check proved nothing"
    assert all(CANARY.encode() not in cmd for cmd in seen)
    assert all(b"--no-password" in cmd for cmd in seen)
    assert CANARY not in result.stdout + result.stderr
    assert "DEBUG" in result.stderr
    ledger = setup.query(
        "SELECT string_agg(row_to_json(t)::text, '') FROM ("
        " SELECT row_to_json(b)::text AS r FROM backupctl.backups b UNION ALL"
        " SELECT row_to_json(i)::text FROM backupctl.invocations i UNION ALL"
        " SELECT row_to_json(n)::text FROM backupctl.nightly_runs n) t"
    )
    assert CANARY not in str(ledger)
    assert "no_such_db" in str(ledger)  # the failure itself is recorded
    assert CANARY not in status.stdout + status.stderr
    assert json.loads(status.stdout)["backups"][0]["status"] == "failed"


def test_a_pg_dump_killed_mid_stream_publishes_nothing_and_a_rerun_succeeds(
    setup: Setup, new_db: object
) -> None:
    assert callable(new_db)
    source = new_db("big")
    with admin(source) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, pad text)")
        conn.execute(
            "INSERT INTO t SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 600000) g"
        )
    dbname = str(conninfo_to_dict(source)["dbname"])
    setup.env["BIG_DSN"] = source
    setup.write_registry(pg_app("big", env="BIG_DSN"))

    proc = setup.start("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")
    wait_for(
        lambda: any(
            f.endswith(".tmp") and (setup.storage / f).stat().st_size > 0 for f in setup.files()
        ),
        interval=0.002,
    )
    for pid, _ in pg_dump_processes(dbname):
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 1, out + err
    row = row_of(setup, "big")
    assert row["status"] == "failed"
    assert "pg_dump was killed by signal 9" in str(row["error"])
    assert setup.files() == []

    rerun = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="2")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert row_of(setup, "big")["status"] == "succeeded"
    assert len(setup.files()) == 1


def test_a_pg_bin_dir_without_pg_dump_fails_the_backup_with_its_reason(
    setup: Setup, new_db: object
) -> None:
    # (Which pg_dump fits which server: tests/e2e/test_pg_versions.py.)
    assert callable(new_db)
    source = new_db("shop")
    seed_shop(source, rows=2_000)
    setup.env["SHOP_DSN"] = source
    empty = setup.root / "no-binaries"
    empty.mkdir()
    setup.write_registry(pg_app("missing", bin_dir=str(empty)))

    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")

    assert result.returncode == 1
    assert f"pg_dump not found in pg_bin_dir {empty}" in str(row_of(setup, "missing")["error"])
    assert setup.files() == []
