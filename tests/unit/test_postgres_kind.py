"""The postgres kind's pure parts: argv, DSN handling, environment, program lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupctl.errors import BackupFailed
from backupctl.kinds import kind_of_artifact
from backupctl.kinds.fields import app_dsn
from backupctl.kinds.pgtools import PgTools
from backupctl.kinds.postgres import (
    PostgresKind,
    libpq_env,
    pg_dump_argv,
    pg_restore_argv,
    split_password,
)
from backupctl.registry import App


def test_pg_dump_argv_is_custom_format_uncompressed_and_never_prompts() -> None:
    assert pg_dump_argv("/bin/pg_dump", "host=db dbname=shop") == [
        "/bin/pg_dump",
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--dbname=host=db dbname=shop",
    ]


def test_pg_restore_argv_runs_in_one_transaction_and_cleans_only_when_asked() -> None:
    plain = pg_restore_argv("pg_restore", "dbname=x", clean=False)
    assert plain == [
        "pg_restore",
        "--no-password",
        "--single-transaction",
        "--exit-on-error",
        "--dbname=dbname=x",
    ]
    assert "--clean" in pg_restore_argv("pg_restore", "dbname=x", clean=True)
    assert "--if-exists" in pg_restore_argv("pg_restore", "dbname=x", clean=True)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://shop:s3cr3t-pw@db.internal:5433/shop?sslmode=require",
        "host=db.internal port=5433 user=shop password=s3cr3t-pw dbname=shop sslmode=require",
        "postgresql://shop@db.internal:5433/shop?password=s3cr3t-pw&sslmode=require",
    ],
)
def test_split_password_takes_the_password_out_of_any_dsn_form(dsn: str) -> None:
    conninfo, password = split_password(dsn)
    assert password == "s3cr3t-pw"
    assert "s3cr3t-pw" not in conninfo
    for part in ("host=db.internal", "port=5433", "user=shop", "dbname=shop", "sslmode=require"):
        assert part in conninfo


def test_split_password_of_a_dsn_without_one_gives_none() -> None:
    assert split_password("postgresql://shop@db/shop")[1] is None


def test_an_invalid_dsn_fails_without_echoing_it() -> None:
    with pytest.raises(BackupFailed) as excinfo:
        split_password("host=db password='s3cr3t-pw bogus")
    assert "invalid DSN" in str(excinfo.value)
    assert "s3cr3t-pw" not in str(excinfo.value)


def test_libpq_env_sets_pgpassword_only_from_the_dsn() -> None:
    base = {"PATH": "/bin", "PGPASSWORD": "someone-elses"}
    assert libpq_env("mine", base) == {"PATH": "/bin", "PGPASSWORD": "mine"}
    assert libpq_env(None, base) == {"PATH": "/bin"}


def test_app_dsn_reads_dsn_or_the_named_environment_variable() -> None:
    assert app_dsn(App("a", "postgres", {"dsn": "dbname=a"})) == "dbname=a"
    app = App("a", "postgres", {"dsn_env": "SHOP_DSN"})
    assert app_dsn(app, {"SHOP_DSN": "dbname=b"}) == "dbname=b"
    with pytest.raises(BackupFailed, match=r"environment variable SHOP_DSN \(dsn_env\) is not set"):
        app_dsn(app, {})


def test_the_kind_lists_the_dsn_and_its_password_as_secrets() -> None:
    app = App("a", "postgres", {"dsn": "postgresql://u:pw-123@h/d"})
    assert PostgresKind().secrets(app) == ["postgresql://u:pw-123@h/d", "pw-123"]


def test_the_configured_folder_comes_first_and_must_hold_the_program(tmp_path: Path) -> None:
    program = tmp_path / "pg_dump"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert PgTools(str(tmp_path)).candidates("pg_dump", path_env="")[0] == str(program)
    with pytest.raises(BackupFailed, match="pg_restore not found in pg_bin_dir"):
        PgTools(str(tmp_path)).candidates("pg_restore", path_env="")


def test_every_folder_on_path_is_a_candidate_then_the_embedded_binaries(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "pg_dump").write_text("#!/bin/sh\n")
        (folder / "pg_dump").chmod(0o755)
    (tmp_path / "c").symlink_to(first)  # the same file twice counts once
    path_env = f"{first}:{tmp_path / 'c'}:{second}:{tmp_path / 'none'}"
    found = PgTools().candidates("pg_dump", path_env=path_env)
    assert found[:2] == [str(first / "pg_dump"), str(second / "pg_dump")]
    assert found[2].endswith("pginstall/bin/pg_dump") and len(found) == 3
    assert PgTools(embedded=False).candidates("pg_dump", path_env=path_env) == found[:2]


def test_without_path_the_embedded_pg_dump_is_found_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    (found,) = PgTools().find("pg_dump")
    assert found.path.endswith("pginstall/bin/pg_dump") and found.major >= 16
    with pytest.raises(BackupFailed) as excinfo:
        PgTools(embedded=False).find("pg_dump")
    assert str(excinfo.value) == (
        "pg_dump not found (the embedded Postgres's are turned off): "
        "install the PostgreSQL client tools or set pg_bin_dir"
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("shop-2026-11-28-b1-a1.pgdump.zst", "postgres"),
        ("wiki-2026-11-28-b2-a3.tar.zst", "files"),
        ("crm-2026-11-28-b3-a1.out.zst", "command"),
    ],
)
def test_the_kind_of_an_artifact_follows_from_its_name(name: str, kind: str) -> None:
    assert kind_of_artifact(f"s3://bucket/prefix/app/2026-11-28/{name}") == kind


def test_a_foreign_file_is_not_taken_for_an_artifact() -> None:
    with pytest.raises(ValueError, match="not a backupctl artifact name"):
        kind_of_artifact("file:///backups/notes.txt")
