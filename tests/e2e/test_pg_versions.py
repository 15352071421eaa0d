"""pg_dump and pg_restore chosen by major version, with real tools of two majors: Debian's
PostgreSQL 15 (client and server, in /usr/lib/postgresql/15/bin) and the embedded 16
(pgserver's), against a 15 server of its own and the suite's 16 server."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.servers import RestartablePostgres
from tests.conftest import Setup
from tests.e2e.conftest import MakeDb
from tests.e2e.test_postgres_and_restore import NIGHT, admin, fingerprint, row_of, seed_shop
from tests.tools import missing

# Debian's standard location of a PostgreSQL major's programs.
PG15 = Path("/usr/lib/postgresql/15/bin")
INSTALL_15 = "apt-get install postgresql-15 postgresql-client-15 (.ci/system-packages)"


def need_pg15(*programs: str) -> Path:
    """The folder of PostgreSQL 15's programs, or skip (fail under CI) naming the package."""
    for name in programs:
        if not os.access(PG15 / name, os.X_OK):
            missing(f"PostgreSQL 15's {name} ({PG15 / name})", INSTALL_15)
    return PG15


@pytest.fixture
def pg15_client() -> Path:
    return need_pg15("pg_dump", "pg_restore")


@pytest.fixture(scope="session")
def pg15_server() -> Iterator[str]:
    """A throwaway PostgreSQL 15 on 127.0.0.1 (never the machine's own server)."""
    need_pg15("initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore")
    with RestartablePostgres(prefix="backupctl-test-pg15-", bin_dir=PG15) as pg:
        yield pg.url


@pytest.fixture
def pg16_server(pg_server_url: str) -> str:
    """The suite's server, which this file needs to be a 16 (pgserver's)."""
    with admin(pg_server_url) as conn:
        if conn.info.server_version // 10000 != 16:
            pytest.skip("needs the suite's server to be PostgreSQL 16 (pgserver's)")
    return pg_server_url


def exists(dsn: str) -> bool:
    try:
        psycopg.connect(dsn).close()
    except psycopg.OperationalError:
        return False
    return True


def pg_entry(app_id: str, env: str, bin_dir: Path | None = None) -> str:
    line = f'pg_bin_dir = "{bin_dir}"\n' if bin_dir else ""
    return f'\n[[app]]\nid = "{app_id}"\nkind = "postgres"\ndsn_env = "{env}"\n{line}'


def path_15_first() -> str:
    return f"{PG15}{os.pathsep}{os.environ.get('PATH', '')}"


def server_version(dsn: str) -> str:
    with admin(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    return str(row[0]).split()[0]


def back_up(setup: Setup, source: str, **env: str) -> dict[str, object]:
    seed_shop(source, rows=2_000)
    setup.env["SHOP_DSN"] = source
    setup.write_registry(pg_entry("shop", "SHOP_DSN"))
    result = setup.cli("run-nightly", "--date", NIGHT, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return row_of(setup, "shop")


def restore_with_15_first(
    setup: Setup, target: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`restore shop` into `target` with the 15 tools first on PATH."""
    return setup.cli(
        "restore", "shop", *args, "--to", "env:TARGET", TARGET=target, PATH=path_15_first()
    )


def test_a_16_source_is_dumped_by_a_16_pg_dump_though_pg_dump_15_comes_first_on_path(
    setup: Setup, pg16_server: str, pg15_client: Path, make_db: MakeDb
) -> None:
    row = back_up(setup, make_db(pg16_server), PATH=path_15_first())

    assert re.fullmatch(r"pg_dump 16\.\d+", str(row["written_by"])), row["written_by"]


def test_a_15_source_is_backed_up_and_restored_into_a_database_restore_creates(
    setup: Setup, pg15_server: str, make_db: MakeDb
) -> None:
    source = make_db(pg15_server)
    row = back_up(setup, source, PATH=path_15_first())
    # The newest pg_dump that fits: the embedded 16 dumps a 15 server too.
    assert re.fullmatch(r"pg_dump 16\.\d+", str(row["written_by"])), row["written_by"]

    target = make_db(pg15_server, create=False)
    restored = restore_with_15_first(setup, target, "--date", NIGHT)

    assert restored.returncode == 0, restored.stderr
    assert re.search(r"with pg_restore 16\.\d+$", restored.stdout.strip()), restored.stdout
    assert "created database Db-" in restored.stderr
    assert fingerprint(target) == fingerprint(source)


def test_with_only_pg_dump_15_allowed_a_15_source_is_dumped_by_it_and_restored_by_15(
    setup: Setup, pg15_server: str, make_db: MakeDb
) -> None:
    source = make_db(pg15_server)
    row = back_up(setup, source, BACKUPCTL_PG_BIN_DIR=str(PG15), BACKUPCTL_PG_EMBEDDED="false")
    assert re.fullmatch(r"pg_dump 15\.\d+", str(row["written_by"])), row["written_by"]
    manifest = row["manifest"]  # its TOC read in archive format 1.14, as 16 writes 1.15
    assert isinstance(manifest, dict) and manifest["tables"] == 3, manifest

    target = make_db(pg15_server)
    # Both majors are there: the same major as the pg_dump that wrote it is preferred.
    restored = restore_with_15_first(setup, target)

    assert restored.returncode == 0, restored.stderr
    assert re.search(r"with pg_restore 15\.\d+$", restored.stdout.strip()), restored.stdout
    assert fingerprint(target) == fingerprint(source)


def test_restore_of_a_16_archive_picks_pg_restore_16_though_15_comes_first_on_path(
    setup: Setup, pg16_server: str, pg15_client: Path, make_db: MakeDb
) -> None:
    source = make_db(pg16_server)
    back_up(setup, source)
    target = make_db(pg16_server)

    restored = restore_with_15_first(setup, target, "--date", NIGHT)

    assert restored.returncode == 0, restored.stderr
    assert re.search(r"with pg_restore 16\.\d+$", restored.stdout.strip()), restored.stdout
    assert fingerprint(target) == fingerprint(source)


def test_no_pg_dump_that_fits_fails_the_backup_and_config_check_naming_the_versions_found(
    setup: Setup, pg16_server: str, pg15_client: Path, make_db: MakeDb
) -> None:
    source = make_db(pg16_server)
    seed_shop(source, rows=100)
    setup.env.update(SHOP_DSN=source, PATH=str(PG15), BACKUPCTL_PG_EMBEDDED="false")
    setup.write_registry(pg_entry("shop", "SHOP_DSN") + pg_entry("pinned", "SHOP_DSN", PG15))
    expected = (
        f"the source server runs PostgreSQL {server_version(source)}; found pg_dump 15 ({PG15});"
        " install PostgreSQL 16 client tools or set pg_bin_dir"
    )

    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")
    check = setup.cli("config", "check")

    assert result.returncode == 1, result.stdout + result.stderr
    for app in ("shop", "pinned"):
        row = row_of(setup, app)
        assert row["status"] == "failed"
        assert row["error"] == expected
    assert setup.files() == []
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"app 'shop': {expected}" in check.stdout
    assert f"app 'pinned': {expected}" in check.stdout


def test_no_pg_restore_that_fits_fails_in_one_line_and_creates_no_database(
    setup: Setup, pg16_server: str, pg15_client: Path, make_db: MakeDb
) -> None:
    back_up(setup, make_db(pg16_server))
    target = make_db(pg16_server, create=False)

    refused = setup.cli(
        "restore",
        "shop",
        "--to",
        "env:TARGET",
        TARGET=target,
        PATH=str(PG15),
        BACKUPCTL_PG_EMBEDDED="false",
    )

    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        "backupctl: error: restore failed: this backup was written by pg_dump 16; found "
        f"pg_restore 15 ({PG15}); install PostgreSQL 16 client tools or set pg_bin_dir"
    )
    assert not exists(target)


def test_a_backup_without_a_recorded_pg_dump_is_matched_by_its_archive_header(
    setup: Setup, pg16_server: str, pg15_client: Path, make_db: MakeDb
) -> None:
    source = make_db(pg16_server)
    back_up(setup, source)
    setup.query("UPDATE backupctl.backups SET written_by = NULL")  # as made before 0006
    target = make_db(pg16_server)

    refused = setup.cli(
        "restore",
        "shop",
        "--to",
        "env:TARGET",
        TARGET=target,
        PATH=str(PG15),
        BACKUPCTL_PG_EMBEDDED="false",
    )
    restored = restore_with_15_first(setup, target)

    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        "backupctl: error: restore failed: this backup's archive (format 1.15) needs "
        f"pg_restore 16 or newer; found pg_restore 15 ({PG15}); install PostgreSQL 16 "
        "client tools or set pg_bin_dir"
    )
    assert restored.returncode == 0, restored.stderr
    assert re.search(r"with pg_restore 16\.\d+$", restored.stdout.strip()), restored.stdout
    assert fingerprint(target) == fingerprint(source)
