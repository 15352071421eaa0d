"""restore: into a database it creates (or refuses to, with --no-create), and the
latest succeeded nightly backup when no --date is given."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Setup
from tests.e2e.conftest import MakeDb
from tests.e2e.test_pg_versions import exists, pg_entry
from tests.e2e.test_postgres_and_restore import NIGHT, admin, fingerprint, seed_shop


@pytest.fixture
def shop(setup: Setup, pg_server_url: str, make_db: MakeDb) -> str:
    """A nightly backup of a small shop database; returns the source's DSN."""
    source = make_db(pg_server_url)
    seed_shop(source, rows=2_000)
    setup.env["SHOP_DSN"] = source
    setup.write_registry(pg_entry("shop", "SHOP_DSN"))
    result = setup.cli("run-nightly", "--date", NIGHT)
    assert result.returncode == 0, result.stdout + result.stderr
    return source


def test_restore_into_a_database_that_does_not_exist_creates_it_under_a_quoted_name(
    setup: Setup,
    shop: str,
    pg_server_url: str,
    make_db: MakeDb,
) -> None:
    target = make_db(pg_server_url, create=False)  # "Db-…": capitals and hyphens, quoted
    name = target.split("dbname=")[1].split()[0]

    restored = setup.cli("restore", "shop", "--date", NIGHT, "--to", "env:TARGET", TARGET=target)

    assert restored.returncode == 0, restored.stderr
    assert f"created database {name}" in restored.stderr.splitlines()
    assert fingerprint(target) == fingerprint(shop)


def test_no_create_refuses_a_database_that_does_not_exist_and_creates_nothing(
    setup: Setup,
    shop: str,
    pg_server_url: str,
    make_db: MakeDb,
) -> None:
    target = make_db(pg_server_url, create=False)
    name = target.split("dbname=")[1].split()[0]

    refused = setup.cli(
        "restore", "shop", "--date", NIGHT, "--to", "env:TARGET", "--no-create", TARGET=target
    )

    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"backupctl: error: the target database {name} does not exist (--no-create): "
        "create it first, or restore without --no-create"
    ]
    assert not exists(target)


def test_a_failed_restore_drops_the_database_it_created(
    setup: Setup,
    pg_server_url: str,
    make_db: MakeDb,
) -> None:
    role = f"gone_owner_{os.getpid()}"
    source = make_db(pg_server_url)
    with admin(source) as conn:
        conn.execute(f"CREATE ROLE {role}")
        conn.execute(f"CREATE TABLE t (id int); ALTER TABLE t OWNER TO {role}")
    setup.env["SHOP_DSN"] = source
    setup.write_registry(pg_entry("shop", "SHOP_DSN"))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    with admin(source) as conn:  # the archive now names an owner the server lacks
        conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
    target = make_db(pg_server_url, create=False)
    name = target.split("dbname=")[1].split()[0]

    failed = setup.cli("restore", "shop", "--to", "env:TARGET", TARGET=target)

    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert f"created database {name}" in lines
    assert f"dropped database {name} again: the restore into it failed" in lines
    assert lines[-1].startswith("backupctl: error: restore failed: pg_restore exited with status")
    assert f'role "{role}" does not exist' in lines[-1]
    assert not exists(target)


def test_restore_without_date_takes_the_latest_succeeded_night_and_names_it(
    setup: Setup,
) -> None:
    data = setup.root / "export.txt"
    setup.write_registry(f'[[app]]\nid = "export"\nkind = "command"\nargv = ["cat", "{data}"]\n')
    for night, text in (("2026-11-26", "first"), ("2026-11-27", "second")):
        data.write_text(text)
        assert setup.cli("run-nightly", "--date", night).returncode == 0
    data.unlink()  # the latest night fails
    later = setup.cli("run-nightly", "--date", "2026-11-28", BACKUPCTL_RUN_MAX_ATTEMPTS="1")
    assert later.returncode == 1
    ((backup_id,),) = setup.query(
        "SELECT id FROM backupctl.backups WHERE run_date = '2026-11-27' AND app_id = 'export'"
    )

    restored = setup.cli("restore", "export", "--to", str(setup.root / "out.txt"))

    assert restored.returncode == 0, restored.stderr
    assert restored.stderr.splitlines() == [
        f"restoring the latest nightly backup of export: night 2026-11-27, backup {backup_id}"
    ]
    assert (setup.root / "out.txt").read_text() == "second"


def test_restore_refuses_date_with_adhoc_and_an_app_without_a_succeeded_backup(
    setup: Setup,
) -> None:
    setup.write_registry('[[app]]\nid = "export"\nkind = "command"\nargv = ["false"]\n')
    assert setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1").returncode
    both = setup.cli("restore", "export", "--date", NIGHT, "--adhoc", "1", "--to", "-")
    none = setup.cli("restore", "export", "--to", "-")

    assert both.returncode == 2
    assert "give --date D or --adhoc ID, not both" in both.stderr
    assert none.returncode == 2
    assert none.stderr.splitlines() == [
        "backupctl: error: no succeeded nightly backup of app 'export' is recorded: "
        "name one with --date D or --adhoc ID"
    ]
