"""The postgres kind's pure parts: argv, DSN handling, environment, program lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupctl.errors import BackupFailed
from backupctl.kinds import kind_of_artifact
from backupctl.kinds.postgres import (
    PostgresKind,
    app_dsn,
    find_program,
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


def test_find_program_prefers_the_configured_folder(tmp_path: Path) -> None:
    program = tmp_path / "pg_dump"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert find_program("pg_dump", str(tmp_path)) == str(program)
    with pytest.raises(BackupFailed, match="pg_restore not found in pg_bin_dir"):
        find_program("pg_restore", str(tmp_path))


def test_find_program_falls_back_to_path_then_the_embedded_binaries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_program("pg_dump", None)
    assert found.endswith("pginstall/bin/pg_dump")


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
