"""Trust every backup: a manifest with each one, empty backups refused, and a backup far
smaller than usual warned about (check, status, runs, prune). The real CLI, a real
ledger, real pg_dump."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from backupctl.ledger.queries import migrations
from backupctl.ledger.store import connect_ledger
from backupctl.manifest import Manifest
from tests.conftest import Setup
from tests.e2e.conftest import MakeDb
from tests.e2e.test_monitoring_cli import Recorder, recorder  # noqa: F401 (fixture)
from tests.e2e.test_postgres_and_restore import BIN, pg_app, seed_shop

NIGHTS = [(date(2026, 11, 1) + timedelta(days=n)).isoformat() for n in range(7)]
NO_OUTPUT = f'argv = ["{sys.executable}", "-c", "pass"]'
KEEP_2 = {
    "BACKUPCTL_RETENTION_KEEP_DAILY": "2",
    "BACKUPCTL_RETENTION_KEEP_WEEKLY": "0",
    "BACKUPCTL_RETENTION_KEEP_MONTHLY": "0",
}


def sized_app(setup: Setup) -> Path:
    """An app whose output is as many random (incompressible) bytes as its size file says."""
    size_file = setup.root / "size"
    code = (
        f"import os, sys; n = int(open({str(size_file)!r}).read());"
        " sys.stdout.buffer.write(os.urandom(n))"
    )
    setup.write_registry(f"""
[[app]]
id = "shop"
kind = "command"
argv = ["{sys.executable}", "-c", "{code}"]
""")
    return size_file


def run_night(setup: Setup, night: str) -> None:
    result = setup.cli("run-nightly", "--date", night)
    assert result.returncode == 0, result.stdout + result.stderr


def five_usual_nights_then_a_small_one(setup: Setup) -> None:
    size_file = sized_app(setup)
    for night in NIGHTS[:5]:
        size_file.write_text("200000")
        run_night(setup, night)
    size_file.write_text("10000")
    run_night(setup, NIGHTS[5])


WARNING = re.compile(r"10\.0 KB, 5% of the usual 200\.0 KB")


def test_a_night_far_smaller_than_usual_succeeds_with_a_warning_in_check_status_and_runs(
    setup: Setup,
) -> None:
    five_usual_nights_then_a_small_one(setup)

    [(status, warning)] = setup.query(
        "SELECT status, warning FROM backupctl.backups WHERE run_date = %s", NIGHTS[5]
    )
    assert status == "succeeded" and WARNING.fullmatch(str(warning)), warning
    assert setup.query("SELECT count(*) FROM backupctl.backups WHERE warning IS NOT NULL") == [(1,)]

    check = setup.cli("check", "--date", NIGHTS[5])
    assert check.returncode == 1, check.stdout
    first = check.stdout.splitlines()[0]
    assert first.startswith(f"WARNING: night {NIGHTS[5]}: 1 backup far smaller than usual (shop: ")
    assert WARNING.search(first)
    assert any(
        line.startswith("  shop: succeeded") and "warning: 10.0 KB" in line
        for line in check.stdout.splitlines()
    )
    doc = json.loads(setup.cli("check", "--date", NIGHTS[5], "--json").stdout)
    assert doc["state"] == "WARNING" and WARNING.fullmatch(doc["apps"][0]["warning"])
    assert setup.cli("check", "--date", NIGHTS[4]).returncode == 0  # the usual nights: OK

    text = setup.cli("status", "--date", NIGHTS[5]).stdout
    assert text.splitlines()[0] == (
        f"night {NIGHTS[5]}: complete, 1/1 succeeded, 0 failed; 1 warning (shop)"
    )
    assert re.search(r"^shop\s+succeeded\s.*warning: 10\.0 KB, 5% of the usual", text, re.M)
    doc = json.loads(setup.cli("status", "--date", NIGHTS[5], "--json").stdout)
    assert WARNING.fullmatch(doc["backups"][0]["warning"])
    assert doc["backups"][0]["error"] is None and doc["backups"][0]["status"] == "succeeded"
    earlier = json.loads(setup.cli("status", "--date", NIGHTS[4], "--json").stdout)
    assert earlier["backups"][0]["warning"] is None

    runs = json.loads(setup.cli("runs", "--json").stdout)
    assert [n["warnings"] for n in runs["nights"]] == [1, 0, 0, 0, 0, 0]


def test_prune_keeps_every_backup_of_an_app_whose_newest_is_far_smaller_than_usual(
    setup: Setup,
) -> None:
    five_usual_nights_then_a_small_one(setup)
    before = setup.files()
    pruned = setup.cli("prune", **KEEP_2)
    assert pruned.returncode == 0, pruned.stderr
    assert f"kept every backup of shop: its newest nightly backup ({NIGHTS[5]}) is far" in (
        pruned.stdout
    )
    assert pruned.stdout.splitlines()[-1] == "pruned 0 backups, kept 6"
    assert setup.files() == before
    doc = json.loads(setup.cli("prune", "--dry-run", "--json", **KEEP_2).stdout)
    assert [p["app_id"] for p in doc["protected"]] == ["shop"] and doc["pruned"] == []

    # A usual night again: the doubt is gone, and retention applies as before.
    (setup.root / "size").write_text("200000")
    run_night(setup, NIGHTS[6])
    again = setup.cli("prune", **KEEP_2)
    assert again.stdout.splitlines()[-1] == "pruned 5 backups, kept 2", again.stdout
    assert "kept every backup" not in again.stdout


def test_the_ping_body_mentions_the_warning(
    setup: Setup,
    recorder: Recorder,  # noqa: F811
) -> None:
    setup.env["BACKUPCTL_MONITORING_PING_URL"] = recorder.url

    five_usual_nights_then_a_small_one(setup)

    _, path, body = recorder.seen[-1]
    assert path == "/ping/5ecret-uuid-0123456789"  # success: the backup did succeed
    assert re.search(r"^- shop: succeeded, warning: 10\.0 KB, 5% of the usual", body, re.M)


def test_min_size_ratio_zero_turns_the_guard_off(setup: Setup) -> None:
    setup.env["BACKUPCTL_RUN_MIN_SIZE_RATIO"] = "0"
    five_usual_nights_then_a_small_one(setup)

    assert setup.query("SELECT count(*) FROM backupctl.backups WHERE warning IS NOT NULL") == [(0,)]
    assert setup.cli("check", "--date", NIGHTS[5]).returncode == 0


def test_a_command_with_no_output_fails_as_an_empty_backup_without_retry(setup: Setup) -> None:
    setup.write_registry(f'[[app]]\nid = "quiet"\nkind = "command"\n{NO_OUTPUT}\n')

    result = setup.cli("run-nightly", "--date", NIGHTS[0], BACKUPCTL_RUN_MAX_ATTEMPTS="3")

    assert result.returncode == 1
    assert "empty backup: the command wrote no output" in result.stdout
    [(status, attempts, error)] = setup.query(
        "SELECT status, attempts, error FROM backupctl.backups"
    )
    # Another attempt would be as empty: one attempt, failed, nothing in storage.
    assert (status, attempts, error) == ("failed", 1, "empty backup: the command wrote no output")
    assert setup.files() == []
    assert setup.cli("check", "--date", NIGHTS[0]).returncode == 2
    assert "empty backup" in setup.cli("status", "--date", NIGHTS[0]).stdout
    # The next run leaves it alone; an operator's retry gives it a new round.
    assert setup.cli("run-nightly", "--date", NIGHTS[0]).returncode == 1
    assert setup.query("SELECT attempts FROM backupctl.backups") == [(1,)]
    setup.cli("retry", "--date", NIGHTS[0])
    assert setup.query("SELECT status, attempts FROM backupctl.backups") == [("failed", 2)]


def test_allow_empty_lets_a_command_with_no_output_succeed(setup: Setup) -> None:
    setup.write_registry(
        f'[[app]]\nid = "quiet"\nkind = "command"\n{NO_OUTPUT}\nallow_empty = true\n'
    )

    run_night(setup, NIGHTS[0])

    [(status, manifest)] = setup.query("SELECT status, manifest FROM backupctl.backups")
    assert (status, manifest) == ("succeeded", {"uncompressed_bytes": 0})
    assert len(setup.files()) == 1


def test_an_empty_folder_fails_as_an_empty_backup(setup: Setup) -> None:
    empty = setup.root / "uploads"
    (empty / "no-files-here").mkdir(parents=True)
    setup.write_registry(f'[[app]]\nid = "wiki"\nkind = "files"\npath = "{empty}"\n')

    result = setup.cli("run-nightly", "--date", NIGHTS[0])

    assert result.returncode == 1
    assert setup.query("SELECT status, error FROM backupctl.backups") == [
        ("failed", f"empty backup: the folder {empty} holds no files")
    ]
    assert setup.files() == []


def test_a_database_with_no_tables_fails_as_an_empty_backup(
    setup: Setup, pg_server_url: str, make_db: MakeDb
) -> None:
    setup.env["SHOP_DSN"] = make_db(pg_server_url)
    setup.write_registry(pg_app("shop"))

    result = setup.cli("run-nightly", "--date", NIGHTS[0])

    assert result.returncode == 1
    assert setup.query("SELECT status, error FROM backupctl.backups") == [
        ("failed", "empty backup: the database has no tables")
    ]
    assert setup.files() == []


def test_each_kind_records_its_manifest(setup: Setup, pg_server_url: str, make_db: MakeDb) -> None:
    data = setup.root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.bin").write_bytes(b"\0" * 5000)
    (data / "link").symlink_to("a.txt")  # not a regular file
    source = make_db(pg_server_url)
    seed_shop(source, rows=2_000)
    setup.env["SHOP_DSN"] = source
    setup.write_registry(
        f'[[app]]\nid = "wiki"\nkind = "files"\npath = "{data}"\n'
        f'[[app]]\nid = "export"\nkind = "command"\n'
        f'argv = ["{sys.executable}", "-c", "print(\'x\' * 999)"]\n' + pg_app("shop", bin_dir=BIN)
    )

    run_night(setup, NIGHTS[0])

    rows = setup.query("SELECT app_id, manifest FROM backupctl.backups ORDER BY app_id")
    found: dict[str, Any] = {str(app_id): manifest for app_id, manifest in rows}
    assert found["export"] == {"uncompressed_bytes": 1000}
    wiki = found["wiki"]
    assert (wiki["files"], wiki["file_bytes"]) == (2, 6 + 5000)
    assert wiki["uncompressed_bytes"] >= 6 + 5000  # the tar stream: headers and padding too
    shop = found["shop"]
    assert shop["tables"] == 3
    assert sorted(shop["table_names"]) == ["public.blobs", "public.customers", "public.orders"]
    assert shop["uncompressed_bytes"] > 0

    # What a drill will read: the manifest, through the ledger.
    [(backup_id,)] = setup.query("SELECT id FROM backupctl.backups WHERE app_id = 'shop'")
    ledger = connect_ledger(setup.database_url, "backupctl")
    try:
        manifest = ledger.manifest(int(str(backup_id)))
    finally:
        ledger.close()
    assert isinstance(manifest, Manifest)
    assert len(manifest.fields["table_names"]) == 3
    assert manifest.uncompressed_bytes == shop["uncompressed_bytes"]


def test_a_ledger_at_0006_upgrades_to_0007_with_its_rows_intact(setup: Setup) -> None:
    with psycopg.connect(setup.database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA backupctl")
        conn.execute("SET search_path TO backupctl")
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, text in migrations():
            if version <= 6:
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", [version, name])
        conn.execute(
            "INSERT INTO nightly_runs (run_date, status, planned, succeeded)"
            " VALUES ('2026-10-01', 'complete', 1, 1)"
        )
        conn.execute(
            "INSERT INTO backups (app_id, run_date, trigger, status, attempts, artifact_uri,"
            " size_bytes, sha256, written_by, finished_at, started_at)"
            " VALUES ('shop', '2026-10-01', 'nightly', 'succeeded', 1, 'file:///x/shop.zst',"
            " 4711, 'abc', 'pg_dump 16.2', now(), now())"
        )
    before = setup.query("SELECT id, app_id, status, size_bytes, written_by FROM backupctl.backups")

    upgraded = setup.cli("db", "upgrade")

    assert upgraded.returncode == 0, upgraded.stderr
    # 0007 applied (and any later migration after it)
    assert setup.query("SELECT 1 FROM backupctl.schema_migrations WHERE version = 7") == [(1,)]
    assert (
        setup.query("SELECT id, app_id, status, size_bytes, written_by FROM backupctl.backups")
        == before
    )
    assert setup.query("SELECT manifest, warning FROM backupctl.backups") == [(None, None)]
    setup.write_registry('[[app]]\nid = "shop"\nkind = "command"\nargv = ["true"]\n')
    doc = json.loads(setup.cli("status", "--date", "2026-10-01", "--json").stdout)
    assert doc["backups"][0]["size_bytes"] == 4711 and doc["backups"][0]["warning"] is None
