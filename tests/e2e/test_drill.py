"""backupctl drill: real backups restored into scratch targets by the real CLI."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import psycopg

from tests.conftest import Setup
from tests.e2e.conftest import MakeDb, terminate_mid_drill
from tests.e2e.test_postgres_and_restore import BIN, seed_shop

NIGHT = "2026-11-28"


def drills_env(setup: Setup, pg_server_url: str, **extra: str) -> None:
    setup.env["BACKUPCTL_DRILL_POSTGRES_URL"] = pg_server_url
    setup.env.update(extra)


def scratch_dbs(server: str) -> list[str]:
    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'backupctl\\_drill\\_%'"
        ).fetchall()
    return [str(r[0]) for r in rows]


def pg_registry(setup: Setup, app_id: str = "shop") -> None:
    setup.write_registry(f"""
        [[app]]
        id = "{app_id}"
        kind = "postgres"
        dsn_env = "SHOP_DSN"
        pg_bin_dir = "{BIN}"
    """)


def total_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM orders)"
            " + (SELECT count(*) FROM blobs)"
        ).fetchone()
    assert row is not None
    return int(row[0])


def back_up(setup: Setup, **env: str) -> None:
    proc = setup.cli("run-nightly", "--date", NIGHT, **env)
    assert proc.returncode == 0, proc.stderr


def backed_up_shop(setup: Setup, make_db: MakeDb, server: str, rows: int = 5_000) -> str:
    """A seeded postgres app `shop`, backed up for NIGHT, drills set up; its DSN."""
    dsn = make_db(server)
    seed_shop(dsn, rows=rows)
    pg_registry(setup)
    drills_env(setup, server)
    back_up(setup, SHOP_DSN=dsn)
    return dsn


def test_a_postgres_drill_passes_reports_the_exact_rows_and_leaves_no_database(
    setup: Setup, make_db: MakeDb, pg_server_url: str
) -> None:
    dsn = backed_up_shop(setup, make_db, pg_server_url)

    proc = setup.cli("drill", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and doc["kind"] == "drill"
    [one] = doc["drills"]
    assert one["app_id"] == "shop" and one["status"] == "passed" and one["error"] is None
    assert one["run_date"] == NIGHT
    assert one["restored"] == {"tables": 3, "rows": total_rows(dsn)}
    assert scratch_dbs(pg_server_url) == []
    assert setup.query("SELECT status, restored->>'rows' FROM backupctl.drills") == [
        ("passed", str(total_rows(dsn)))
    ]

    text = setup.cli("drill", "--app", "shop", "--date", NIGHT)
    assert text.returncode == 0, text.stderr
    assert f"shop (backup {one['backup_id']}, night {NIGHT}): passed" in text.stdout
    assert "1 drill: 1 passed, 0 failed" in text.stdout

    shown = setup.cli("status", "--date", NIGHT)
    assert "drills of this night's backups (2 drills, 0 failed)" in shown.stdout, shown.stdout
    status = json.loads(setup.cli("status", "--date", NIGHT, "--json").stdout)
    assert [d["status"] for d in status["drills"]] == ["passed", "passed"]

    runs = json.loads(setup.cli("runs", "--json").stdout)
    assert runs["nights"][0]["drills"] == 2 and runs["nights"][0]["drills_failed"] == 0


def test_usage_errors_exit_2(setup: Setup, make_db: MakeDb, pg_server_url: str) -> None:
    pg_registry(setup)
    drills_env(setup, pg_server_url)
    assert setup.cli("drill").returncode == 2  # nothing backed up yet
    unknown = setup.cli("drill", "--app", "nope")
    assert unknown.returncode == 2 and "unknown app nope" in unknown.stderr
    night = setup.cli("drill", "--date", "2020-01-01")
    assert night.returncode == 2 and "not recorded" in night.stderr


def test_a_flipped_byte_fails_the_drill_and_says_why(
    setup: Setup, make_db: MakeDb, pg_server_url: str
) -> None:
    backed_up_shop(setup, make_db, pg_server_url)
    [(backup_id, uri)] = setup.query("SELECT id, artifact_uri FROM backupctl.backups")
    path = Path(str(uri).removeprefix("file://"))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    # The ledger agrees with the damaged bytes: only the restore itself can notice.
    setup.query(
        "UPDATE backupctl.backups SET sha256 = %s, size_bytes = %s WHERE id = %s",
        hashlib.sha256(blob).hexdigest(),
        len(blob),
        backup_id,
    )

    proc = setup.cli("drill", "--json")
    assert proc.returncode == 1, proc.stderr
    [one] = json.loads(proc.stdout)["drills"]
    assert one["status"] == "failed" and one["error"]
    assert scratch_dbs(pg_server_url) == []
    [(status, error)] = setup.query("SELECT status, error FROM backupctl.drills")
    assert status == "failed" and error == one["error"]
    # prune now keeps every backup of the app
    pruned = setup.cli("prune", "--dry-run", "--json")
    assert "latest drill" in pruned.stdout, pruned.stdout


def test_sigterm_during_a_drill_drops_the_scratch_database(
    setup: Setup, make_db: MakeDb, pg_server_url: str
) -> None:
    dsn = make_db(pg_server_url)
    seed_shop(dsn, rows=600_000)  # a restore of seconds: room to see it running
    pg_registry(setup)
    drills_env(setup, pg_server_url)
    back_up(setup, SHOP_DSN=dsn)

    terminate_mid_drill(setup, "shop", lambda: scratch_dbs(pg_server_url))


def test_a_files_drill_counts_files_and_bytes(setup: Setup, pg_server_url: str) -> None:
    data = setup.root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("hello")
    (data / "sub" / "b.bin").write_bytes(b"x" * 1234)
    (data / "link").symlink_to("a.txt")
    setup.write_registry(f"""
        [[app]]
        id = "wiki"
        kind = "files"
        path = "{data}"
    """)
    back_up(setup)
    proc = setup.cli("drill", "--json")
    assert proc.returncode == 0, proc.stderr
    [one] = json.loads(proc.stdout)["drills"]
    assert one["status"] == "passed"
    assert one["restored"] == {"files": 2, "bytes": 1239}


def test_a_command_drill_runs_drill_argv_and_fails_with_its_stderr(setup: Setup) -> None:
    produce = [sys.executable, "-c", "import sys; sys.stdout.write('hello drill\\n' * 1000)"]
    good = [
        sys.executable,
        "-c",
        "import sys; d = sys.stdin.read(); sys.exit(0 if d.count('hello drill') == 1000 else 3)",
    ]
    bad = [
        sys.executable,
        "-c",
        "import sys; sys.stdin.read(); print('no such table', file=sys.stderr); sys.exit(4)",
    ]
    setup.write_registry(f"""
        [[app]]
        id = "crm"
        kind = "command"
        argv = {json.dumps(produce)}
        drill_argv = {json.dumps(good)}

        [[app]]
        id = "erp"
        kind = "command"
        argv = {json.dumps(produce)}
        drill_argv = {json.dumps(bad)}
    """)
    back_up(setup)
    proc = setup.cli("drill", "--json")
    assert proc.returncode == 1, proc.stderr
    by_app = {d["app_id"]: d for d in json.loads(proc.stdout)["drills"]}
    assert by_app["crm"]["status"] == "passed"
    assert by_app["crm"]["restored"] == {"bytes": 12_000}
    assert by_app["erp"]["status"] == "failed"
    assert "exited with status 4: no such table" in by_app["erp"]["error"]


def test_check_with_drill_max_age(setup: Setup) -> None:
    produce = [sys.executable, "-c", "print('data')"]
    setup.write_registry(f"""
        [[app]]
        id = "crm"
        kind = "command"
        argv = {json.dumps(produce)}

        [[app]]
        id = "erp"
        kind = "command"
        argv = {json.dumps(produce)}
    """)
    back_up(setup)
    plain = setup.cli("check", "--date", NIGHT, "--max-age", "30d")
    assert plain.returncode == 0, plain.stdout
    setup.env["BACKUPCTL_DRILL_MAX_AGE"] = "7d"
    metrics = setup.root / "backupctl.prom"
    setup.env["BACKUPCTL_MONITORING_METRICS_FILE"] = str(metrics)
    assert setup.cli("drill", "--app", "crm").returncode == 0
    text = metrics.read_text()
    assert 'backupctl_last_drill_success_timestamp_seconds{app="erp"} 0.0' in text
    assert 'backupctl_drill_duration_seconds{app="crm"}' in text
    proc = setup.cli("check", "--date", NIGHT, "--max-age", "30d")
    assert proc.returncode == 2, proc.stdout
    assert "1 app with no passed drill within 168h00m (erp)" in proc.stdout
    assert setup.cli("drill", "--app", "erp").returncode == 0
    ok = setup.cli("check", "--date", NIGHT, "--max-age", "30d")
    assert ok.returncode == 0, ok.stdout


def test_sample_drills_the_least_recently_drilled(setup: Setup) -> None:
    produce = [sys.executable, "-c", "print('data')"]
    setup.write_registry(
        "".join(
            f'\n[[app]]\nid = "{a}"\nkind = "command"\nargv = {json.dumps(produce)}\n'
            for a in ("a1", "a2")
        )
    )
    back_up(setup)
    first = json.loads(setup.cli("drill", "--sample", "1", "--json").stdout)["drills"]
    second = json.loads(setup.cli("drill", "--sample", "1", "--json").stdout)["drills"]
    assert {first[0]["app_id"], second[0]["app_id"]} == {"a1", "a2"}


def test_an_encrypted_backup_is_drilled_with_the_identity(setup: Setup) -> None:
    from tests.e2e.test_encryption import make_key, write_config

    key = make_key(setup.root)
    write_config(setup, f'[encryption]\nrecipients = ["{key.recipient}"]\n')
    data = setup.root / "data"
    data.mkdir()
    (data / "a.txt").write_text("secret notes")
    setup.write_registry(f'[[app]]\nid = "wiki"\nkind = "files"\npath = "{data}"\n')
    back_up(setup)

    without = setup.cli("drill", "--json")
    assert without.returncode == 1, without.stdout + without.stderr
    [failed] = json.loads(without.stdout)["drills"]
    assert "encrypted" in failed["error"] and "--identity" in failed["error"]

    drilled = setup.cli("drill", "--json", "--identity", str(key.identity))
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    [one] = json.loads(drilled.stdout)["drills"]
    assert (one["status"], one["restored"]) == ("passed", {"files": 1, "bytes": 12})
    assert key.secret not in drilled.stdout + drilled.stderr
