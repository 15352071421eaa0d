"""The mysql kind end to end: a throwaway MariaDB (tests/mariadb_server.py) backed up by
the real CLI with mariadb-dump, restored with the mariadb client, drilled."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import psutil  # type: ignore[import-untyped]
import pytest

from bench.servers import free_port
from tests.conftest import Setup, kill_tree, wait_for
from tests.e2e.conftest import terminate_mid_drill
from tests.mariadb_server import MariaDB, identifier, sql_literal, statements

NIGHT = "2026-11-28"
# Characters a DSN must percent-encode and an option file must quote.
CANARY = 'Canary#pw "q" x@y:z'
_names = itertools.count()

MakeDb = Callable[..., str]


@pytest.fixture(scope="session")
def canary(mariadb: MariaDB) -> str:
    """A user with a password (any host: the tests connect over TCP) who may do all."""
    mariadb.sql(
        f"CREATE USER IF NOT EXISTS 'canary'@'%' IDENTIFIED BY {sql_literal(CANARY)};"
        " GRANT ALL PRIVILEGES ON *.* TO 'canary'@'%'"
    )
    return "canary"


@pytest.fixture
def make_db(mariadb: MariaDB) -> Iterator[MakeDb]:
    """make_db(create=True): the name of a database of its own (created unless not
    `create`), dropped at the end."""
    made: list[str] = []

    def make(create: bool = True) -> str:
        name = f"shop-{os.getpid()}-{next(_names)}"
        made.append(name)
        if create:
            mariadb.sql(f"CREATE DATABASE {identifier(name)}")
        return name

    yield make
    for name in made:
        mariadb.sql(f"DROP DATABASE IF EXISTS {identifier(name)}")


def dsn(mariadb: MariaDB, database: str, password: str = CANARY) -> str:
    return mariadb.url(database, "canary", password)


ALL_BYTES = bytes(range(256)).hex()


def seed(mariadb: MariaDB, db: str, rows: int = 100_000) -> None:
    """Tables holding about `rows` rows (text, dates, decimals, every byte value), a
    view, a trigger, a procedure, a function and an event."""
    customers = rows // 2
    orders = rows - customers - 1000
    mariadb.sql(
        f"""
        CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,
                                created DATE, city VARCHAR(40) CHARACTER SET utf8mb4);
        CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL,
                             total DECIMAL(12,2), note TEXT,
                             FOREIGN KEY (customer_id) REFERENCES customers (id));
        CREATE TABLE blobs (id INT PRIMARY KEY, data BLOB);
        CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT,
                            at DATETIME DEFAULT '2026-01-01 00:00:00');
        INSERT INTO customers SELECT seq, CONCAT('customer ', seq),
            '2020-01-01' + INTERVAL (seq % 1000) DAY, IF(seq % 3 = 0, 'Zürich 🏔', NULL)
            FROM seq_1_to_{customers};
        INSERT INTO orders (customer_id, total, note) SELECT 1 + seq % {customers},
            (seq % 1000) + 0.5, CONCAT('line one\\nline two\\t', MD5(seq), ' \\'q\\' \\\\')
            FROM seq_1_to_{orders};
        INSERT INTO blobs SELECT seq, IF(seq = 1, UNHEX('{ALL_BYTES}'),
            UNHEX(CONCAT(MD5(seq), MD5(seq * 7)))) FROM seq_1_to_1000;
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 900;
        CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
            INSERT INTO audit (order_id) VALUES (NEW.id);
        CREATE PROCEDURE customer_orders(IN cid INT)
            SELECT COUNT(*) FROM orders WHERE customer_id = cid;
        CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
        CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit;
        INSERT INTO orders (customer_id, total, note) SELECT seq, 1.25, 'audited'
            FROM seq_1_to_10;
        """,
        database=db,
    )


def checksums(mariadb: MariaDB, db: str) -> dict[str, str]:
    """CHECKSUM TABLE of every table, by table name."""
    found = mariadb.sql(
        "SELECT TABLE_NAME FROM information_schema.TABLES"
        f" WHERE TABLE_SCHEMA = {sql_literal(db)} AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1"
    )
    names = ", ".join(identifier(str(r[0])) for r in found)
    rows = mariadb.sql(f"CHECKSUM TABLE {names}", database=db)
    return {str(name).split(".", 1)[1]: str(value) for name, value in rows}


def row_counts(mariadb: MariaDB, db: str) -> dict[str, int]:
    counts = {}
    for table in ("customers", "orders", "blobs", "audit"):
        [(n,)] = mariadb.sql(f"SELECT COUNT(*) FROM {table}", database=db)
        counts[table] = int(str(n))
    return counts


def objects(mariadb: MariaDB, db: str) -> dict[str, list[str]]:
    """The database's views, triggers, routines and events, by name."""
    schema = sql_literal(db)

    def names(sql: str) -> list[str]:
        return [str(r[0]) for r in mariadb.sql(sql)]

    return {
        "views": names(
            f"SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {schema}"
        ),
        "triggers": names(
            f"SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {schema}"
        ),
        "routines": names(
            "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES"
            f" WHERE ROUTINE_SCHEMA = {schema} ORDER BY 1"
        ),
        "events": names(
            f"SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {schema}"
        ),
    }


def mysql_app(app_id: str = "shop", env: str = "SHOP_MYSQL", dsn: str | None = None) -> str:
    source = f'dsn = "{dsn}"' if dsn else f'dsn_env = "{env}"'
    return f'\n[[app]]\nid = "{app_id}"\nkind = "mysql"\n{source}\n'


def row_of(setup: Setup, app_id: str = "shop") -> dict[str, object]:
    found = setup.query(
        "SELECT row_to_json(b)::text FROM backupctl.backups b"
        " WHERE app_id = %s AND run_date = %s AND trigger = 'nightly'",
        app_id,
        NIGHT,
    )
    return dict(json.loads(str(found[0][0])))


def backed_up(
    setup: Setup, mariadb: MariaDB, make_db: MakeDb, rows: int, user: str = "canary"
) -> str:
    """A seeded database backed up as app `shop` for NIGHT (by `user`, whose password
    is CANARY); its name."""
    db = make_db()
    seed(mariadb, db, rows)
    setup.env["SHOP_MYSQL"] = mariadb.url(db, user, CANARY)
    setup.write_registry(mysql_app())
    done = setup.cli("run-nightly", "--date", NIGHT)
    assert done.returncode == 0, done.stdout + done.stderr
    return db


def test_a_database_round_trips_with_its_trigger_routines_and_event(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    # The least a backup user needs, as the README says (routines: mysql.proc).
    mariadb.sql(
        f"CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY {sql_literal(CANARY)};"
        " GRANT SELECT ON mysql.proc TO 'reader'@'%'"
    )
    db = make_db(create=False)
    mariadb.sql(
        f"CREATE DATABASE {identifier(db)};"
        f" GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON {identifier(db)}.* TO 'reader'@'%'"
    )
    source = backed_up(setup, mariadb, lambda: db, rows=100_000, user="reader")
    row = row_of(setup)
    assert row["status"] == "succeeded"
    assert str(row["written_by"]).startswith(("mariadb-dump ", "mysqldump "))
    assert row["manifest"]["table_names"] == ["audit", "blobs", "customers", "orders"]  # type: ignore[index]
    [artifact] = setup.files()
    assert artifact.endswith(".sql.zst")
    target = make_db(create=False)

    restored = setup.cli(
        "restore", "shop", "--date", NIGHT, "--to", "env:TARGET", TARGET=dsn(mariadb, target)
    )

    assert restored.returncode == 0, restored.stderr
    assert f"created database {target}" in restored.stderr
    assert "restored shop" in restored.stdout and CANARY not in restored.stdout
    assert quote(CANARY, safe="") not in restored.stdout + restored.stderr
    assert checksums(mariadb, target) == checksums(mariadb, source)
    assert row_counts(mariadb, target) == row_counts(mariadb, source)
    assert sum(row_counts(mariadb, source).values()) == 100_020
    assert (
        objects(mariadb, target)
        == objects(mariadb, source)
        == {
            "views": ["big_orders"],
            "triggers": ["orders_audit"],
            "routines": ["FUNCTION doubled", "PROCEDURE customer_orders"],
            "events": ["purge_audit"],
        }
    )
    # ... and they work: the trigger fires, the routines run.
    mariadb.sql("INSERT INTO orders (customer_id, total) VALUES (1, 2.5)", database=target)
    assert row_counts(mariadb, target)["audit"] == row_counts(mariadb, source)["audit"] + 1
    assert mariadb.sql("SELECT doubled(21)", database=target) == [("42",)]
    call = "CALL customer_orders(3)"
    assert mariadb.sql(call, database=target) == mariadb.sql(call, database=source)
    [(data,)] = mariadb.sql("SELECT HEX(data) FROM blobs WHERE id = 1", database=target)
    assert data == ALL_BYTES.upper()


def processes_with(needle: bytes) -> list[psutil.Process]:
    """Running processes whose argv holds `needle`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(needle in part.encode() for part in cmdline):
            found.append(proc)
    return found


def open_files(pid: int) -> dict[str, tuple[str, int]]:
    """A process's file descriptors: what each points to, and its mode."""
    folder = f"/proc/{pid}/fd"
    return {
        fd: (os.readlink(f"{folder}/{fd}"), os.stat(f"{folder}/{fd}").st_mode)
        for fd in os.listdir(folder)
    }


def waiting_for_lock(mariadb: MariaDB, table: str) -> bool:
    """A statement of another session waits for `table`'s lock (the dump, here)."""
    rows = mariadb.sql(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
        " WHERE STATE = 'Waiting for table metadata lock'"
        f" AND INFO LIKE {sql_literal(f'%FROM `{table}`%')}"
    )
    return rows[0][0] != "0"


def test_the_password_never_reaches_argv_the_environment_logs_the_ledger_or_status(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    db = make_db()
    seed(mariadb, db, rows=20_000)
    setup.write_registry(mysql_app(dsn=dsn(mariadb, db)) + mysql_app("broken", env="BROKEN_MYSQL"))
    setup.env["BROKEN_MYSQL"] = dsn(mariadb, "no_such_db")
    secret = CANARY.encode()
    seen: list[list[str]] = []
    dumps: dict[int, tuple[list[str], dict[str, str], dict[str, tuple[str, int]]]] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for proc in psutil.process_iter(["cmdline", "name"]):
                cmdline = proc.info["cmdline"] or []
                seen.append(cmdline)
                if proc.info["name"] == "mariadb-dump" and db in cmdline and proc.pid not in dumps:
                    with contextlib.suppress(psutil.Error, OSError):
                        dumps[proc.pid] = (cmdline, proc.environ(), open_files(proc.pid))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # The dump waits for this lock, so it is surely seen running, however loaded
        # the machine.
        with mariadb.session(db) as holder:
            statements(holder, "LOCK TABLES orders WRITE;")
            proc = setup.start("-vv", "run-nightly", "--date", NIGHT)
            wait_for(lambda: bool(dumps) and waiting_for_lock(mariadb, "orders"), timeout=60)
            statements(holder, "UNLOCK TABLES;")
        out, err = proc.communicate(timeout=120)
    finally:
        done.set()
        watcher.join()
    status = setup.cli("status", "--date", NIGHT, "--json")

    assert proc.returncode == 1, out + err  # "broken" fails
    assert dumps, "mariadb-dump was never caught running: the check proved nothing"
    assert not [argv for argv in seen if any(secret in a.encode() for a in argv)]
    [(argv, environ, files)] = dumps.values()
    assert argv[1].startswith("--defaults-extra-file=/dev/fd/")
    assert not [v for v in environ.values() if secret in v.encode()]
    where, mode = files[argv[1].rsplit("/", 1)[1]]  # the fd it names
    assert where.startswith("/memfd:backupctl-mysql-options")  # in no folder
    assert stat.S_IMODE(mode) == 0o600
    assert CANARY not in out + err and quote(CANARY, safe="") not in out + err
    assert "DEBUG" in err and "--defaults-extra-file=/dev/fd/" in err
    ledger = setup.query(
        "SELECT string_agg(t.r, '') FROM ("
        " SELECT row_to_json(b)::text AS r FROM backupctl.backups b UNION ALL"
        " SELECT row_to_json(i)::text FROM backupctl.invocations i UNION ALL"
        " SELECT row_to_json(n)::text FROM backupctl.nightly_runs n) t"
    )
    assert CANARY not in str(ledger) and quote(CANARY, safe="") not in str(ledger)
    assert "Unknown database" in str(ledger)  # the failure itself is recorded
    assert CANARY not in status.stdout + status.stderr
    by_app = {b["app_id"]: b["status"] for b in json.loads(status.stdout)["backups"]}
    assert by_app == {"shop": "succeeded", "broken": "failed"}


def test_a_backup_killed_mid_dump_publishes_nothing_and_leaves_no_option_file(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    db = make_db()
    seed(mariadb, db, rows=20_000)
    setup.env["SHOP_MYSQL"] = dsn(mariadb, db)
    setup.write_registry(mysql_app())
    tmp = setup.root / "tmp"
    tmp.mkdir()
    env = {"BACKUPCTL_RUN_LEASE": "1s", "TMPDIR": str(tmp)}

    with mariadb.session(db) as holder:
        # blobs and customers are dumped before orders: the dump is well under way.
        statements(holder, "LOCK TABLES orders WRITE;")
        proc = setup.start("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1", **env)
        wait_for(lambda: waiting_for_lock(mariadb, "orders"), timeout=60)
        [dump] = [p for p in processes_with(db.encode()) if p.name() == "mariadb-dump"]
        kill_tree(proc)  # SIGKILL: no clean-up of its own runs
        statements(holder, "UNLOCK TABLES;")
    # Its reader gone, the dump dies at its next write; with it the option file.
    dump.wait(timeout=60)

    row = row_of(setup)
    assert row["status"] == "running"  # not succeeded; its lease runs out
    assert [f for f in setup.files() if not f.endswith(".tmp")] == []  # nothing published
    assert list(tmp.iterdir()) == []
    secret = CANARY.encode()
    assert not [p for p in setup.root.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert not processes_with(db.encode())

    wait_for(
        lambda: bool(
            setup.query(
                "SELECT 1 FROM backupctl.backups WHERE status = 'running'"
                " AND lease_expires_at < now()"
            )
        )
    )
    rerun = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="2", **env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert row_of(setup)["status"] == "succeeded"
    [artifact] = setup.files()
    assert not artifact.endswith(".tmp")


def test_restore_refuses_a_database_that_is_not_empty_unless_clean(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    source = backed_up(setup, mariadb, make_db, rows=5_000)
    before = checksums(mariadb, source)
    mariadb.sql("DELETE FROM blobs; CREATE TABLE extra (id INT)", database=source)

    refused = setup.cli("restore", "shop", "--date", NIGHT, "--to", "env:SHOP_MYSQL")
    assert refused.returncode == 2, refused.stderr
    assert "is not empty" in refused.stderr and "--clean" in refused.stderr
    assert CANARY not in refused.stderr and "mysql://canary:***@" in refused.stderr
    assert row_counts(mariadb, source)["blobs"] == 0  # untouched

    cleaned = setup.cli("restore", "shop", "--date", NIGHT, "--to", "env:SHOP_MYSQL", "--clean")
    assert cleaned.returncode == 0, cleaned.stderr
    after = checksums(mariadb, source)
    assert after.pop("extra") is not None  # not in the backup: left as it was
    assert after == before

    # Only routines left is not empty either.
    only_routine = make_db()
    mariadb.sql("CREATE PROCEDURE p() SELECT 1", database=only_routine)
    routine = setup.cli(
        "restore", "shop", "--date", NIGHT, "--to", "env:T", T=dsn(mariadb, only_routine)
    )
    assert routine.returncode == 2 and "is not empty" in routine.stderr

    missing = make_db(create=False)
    no_create = setup.cli(
        "restore", "shop", "--date", NIGHT, "--to", "env:T", "--no-create", T=dsn(mariadb, missing)
    )
    assert no_create.returncode == 2
    assert f"the target database {missing} does not exist (--no-create)" in no_create.stderr
    assert missing not in mariadb.databases()


def test_a_restore_that_fails_drops_the_database_it_created(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    backed_up(setup, mariadb, make_db, rows=2_000)
    mariadb.sql(
        "CREATE USER IF NOT EXISTS 'creator'@'%' IDENTIFIED BY 'creator-pw';"
        " GRANT CREATE, DROP, SELECT ON *.* TO 'creator'@'%'"  # no INSERT
    )
    target = make_db(create=False)

    failed = setup.cli(
        "restore",
        "shop",
        "--date",
        NIGHT,
        "--to",
        "env:T",
        T=mariadb.url(target, "creator", "creator-pw"),
    )

    assert failed.returncode == 1, failed.stderr
    assert "restore failed: mariadb exited with status 1: ERROR" in failed.stderr
    assert "denied for user 'creator'" in failed.stderr
    assert "INSERT INTO" not in failed.stderr  # the failed statement (the rows) never shown
    assert f"dropped database {target} again" in failed.stderr
    assert "creator-pw" not in failed.stderr
    assert target not in mariadb.databases()


def scratch_dbs(mariadb: MariaDB) -> list[str]:
    return mariadb.databases("backupctl\\_drill\\_%")


def test_a_drill_restores_into_a_scratch_database_counts_rows_and_drops_it(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    source = backed_up(setup, mariadb, make_db, rows=5_000)
    total = sum(row_counts(mariadb, source).values())

    unset = setup.cli("drill", "--json")
    assert unset.returncode == 1
    [failed] = json.loads(unset.stdout)["drills"]
    assert failed["status"] == "failed" and "[drill] mysql_url" in failed["error"]

    setup.env["BACKUPCTL_DRILL_MYSQL_URL"] = mariadb.url("", "canary", CANARY)
    proc = setup.cli("drill", "--json")

    assert proc.returncode == 0, proc.stderr
    [one] = json.loads(proc.stdout)["drills"]
    assert one["status"] == "passed" and one["error"] is None, one
    assert one["restored"] == {"tables": 4, "rows": total}
    assert scratch_dbs(mariadb) == []
    assert CANARY not in proc.stdout + proc.stderr
    text = setup.cli("drill", "--app", "shop")
    assert f"4 tables, {total} rows" in text.stdout, text.stdout + text.stderr


def test_a_drill_missing_a_table_of_its_manifest_fails_and_says_which(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    backed_up(setup, mariadb, make_db, rows=2_000)
    # A manifest that promises a table the dump does not hold.
    setup.query(
        "UPDATE backupctl.backups SET manifest = jsonb_set(manifest, '{table_names}',"
        " manifest->'table_names' || '[\"invoices\"]')"
    )
    setup.env["BACKUPCTL_DRILL_MYSQL_URL"] = mariadb.url("", "canary", CANARY)

    proc = setup.cli("drill", "--json")

    assert proc.returncode == 1
    [one] = json.loads(proc.stdout)["drills"]
    assert "1 of the backup's 5 tables are missing after the restore (invoices)" in one["error"]
    assert scratch_dbs(mariadb) == []


def test_sigterm_during_a_drill_drops_the_scratch_database(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    backed_up(setup, mariadb, make_db, rows=200_000)  # a restore of seconds
    setup.env["BACKUPCTL_DRILL_MYSQL_URL"] = mariadb.url("", "canary", CANARY)

    terminate_mid_drill(setup, "shop", lambda: scratch_dbs(mariadb))


def test_a_bad_dsn_is_exit_2_naming_the_app_and_never_its_password(setup: Setup) -> None:
    setup.write_registry(mysql_app(dsn="mysql://u:Secret-pw@db:port/shop"))
    for args in (("config", "check"), ("run-nightly", "--date", NIGHT)):
        result = setup.cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "dsn: is not a valid MySQL DSN" in result.stderr
        assert "shop" in result.stderr and "Secret-pw" not in result.stdout + result.stderr

    setup.write_registry(mysql_app())
    bad_env = setup.cli("run-nightly", "--date", NIGHT, SHOP_MYSQL="postgresql://u:Secret-pw@h/db")
    assert bad_env.returncode == 1
    error = str(row_of(setup)["error"])
    assert "SHOP_MYSQL (dsn_env): must be a mysql:// URL" in error and "Secret-pw" not in error


def test_an_unreachable_server_fails_the_backup_and_the_restore_with_one_line(
    setup: Setup, mariadb: MariaDB, canary: str, make_db: MakeDb
) -> None:
    nowhere = f"mysql://canary:Secret-pw@127.0.0.1:{free_port()}/shop"
    setup.write_registry(mysql_app())
    setup.env["SHOP_MYSQL"] = nowhere

    check = setup.cli("config", "check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "app 'shop': cannot connect to the source database: mariadb exited" in check.stdout
    assert "Can't connect to server on '127.0.0.1'" in check.stdout

    run = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")
    assert run.returncode == 1
    error = str(row_of(setup)["error"])
    assert error.startswith("mariadb-dump exited with status 2:") and "2002" in error
    assert "Secret-pw" not in error + run.stdout + run.stderr

    backed_up(setup, mariadb, make_db, rows=2_000)
    restore = setup.cli("restore", "shop", "--date", NIGHT, "--to", "env:T", T=nowhere)
    assert restore.returncode == 1
    [line] = restore.stderr.strip().splitlines()
    assert "cannot use the target server 127.0.0.1:" in line and "Can't connect" in line
    assert "Secret-pw" not in line
    bad = setup.cli("restore", "shop", "--date", NIGHT, "--to", "mysql://u:Secret-pw@h/")
    assert bad.returncode == 2 and "--to: names no database" in bad.stderr
    assert "Secret-pw" not in bad.stderr
