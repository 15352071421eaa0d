"""Choosing pg_dump and pg_restore by major version, and reading an archive's header:
the pure parts (the real programs and servers: tests/e2e/test_pg_versions.py)."""

from __future__ import annotations

import pytest

from backupctl.config import load_settings
from backupctl.context import kind_options
from backupctl.errors import BackupFailed, ConfigError
from backupctl.kinds.pgarchive import ArchiveFormat, archive_format
from backupctl.kinds.pgtools import (
    Tool,
    choose_pg_dump,
    choose_pg_restore,
    major_of_recorded,
    parse_version,
    server_version_text,
)

DUMP_15 = Tool("pg_dump", "/usr/bin/pg_dump", "15.20")
DUMP_16 = Tool("pg_dump", "/opt/pg16/bin/pg_dump", "16.2")
DUMP_16_TOO = Tool("pg_dump", "/embedded/bin/pg_dump", "16.4")
RESTORE_15 = Tool("pg_restore", "/usr/bin/pg_restore", "15.20")
RESTORE_16 = Tool("pg_restore", "/opt/pg16/bin/pg_restore", "16.2")
RESTORE_17 = Tool("pg_restore", "/opt/pg17/bin/pg_restore", "17.1")


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("pg_dump (PostgreSQL) 16.2\n", "16.2"),
        ("pg_restore (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n", "15.20"),
        ("pg_dump (PostgreSQL) 9.6.24\n", "9.6.24"),
        ("pg_dump (PostgreSQL) 17beta1\n", "17"),
        ("Error: no version installed\n", None),
    ],
)
def test_a_programs_version_is_read_from_its_version_output(
    output: str, version: str | None
) -> None:
    assert parse_version(output) == version


def test_server_version_numbers_read_as_releases() -> None:
    assert server_version_text(160002) == "16.2"
    assert server_version_text(150020) == "15.20"
    assert server_version_text(90624) == "9.6.24"


def test_the_recorded_pg_dump_gives_its_major_version() -> None:
    assert major_of_recorded("pg_dump 16.2") == 16
    assert major_of_recorded("pg_dump 9.6.24") == 9
    assert major_of_recorded(None) is None
    assert major_of_recorded("mysqldump 8.0") is None


def test_the_newest_pg_dump_at_least_as_new_as_the_server_is_chosen() -> None:
    assert choose_pg_dump([DUMP_15, DUMP_16], 160002) == DUMP_16
    assert choose_pg_dump([DUMP_15, DUMP_16], 150020) == DUMP_16
    assert choose_pg_dump([DUMP_15], 150020) == DUMP_15
    # Among equal majors the first in search order (the configured folder comes first).
    assert choose_pg_dump([DUMP_15, DUMP_16, DUMP_16_TOO], 160002) == DUMP_16


def test_no_pg_dump_that_fits_is_one_line_naming_what_was_found() -> None:
    with pytest.raises(BackupFailed) as excinfo:
        choose_pg_dump([DUMP_15, Tool("pg_dump", "/usr/lib/postgresql/14/bin/x", "14.1")], 170001)
    assert str(excinfo.value) == (
        "the source server runs PostgreSQL 17.1; found pg_dump 15 (/usr/bin), "
        "pg_dump 14 (/usr/lib/postgresql/14/bin); install PostgreSQL 17 client tools "
        "or set pg_bin_dir"
    )


def test_pg_restore_of_the_writers_major_is_preferred_else_the_newest_that_reads_it() -> None:
    tools = [RESTORE_17, RESTORE_15, RESTORE_16]
    assert choose_pg_restore(tools, 15, range(15, 16), "") == RESTORE_15
    assert choose_pg_restore(tools, 16, range(16, 17), "") == RESTORE_16
    assert choose_pg_restore([RESTORE_15, RESTORE_17], 16, range(16, 17), "") == RESTORE_17
    assert choose_pg_restore(tools, 0, range(0), "") == RESTORE_17


def test_no_pg_restore_that_reads_the_backup_says_what_is_needed() -> None:
    with pytest.raises(BackupFailed) as excinfo:
        choose_pg_restore([RESTORE_15], 16, range(16, 17), "this backup was written by pg_dump 16")
    assert str(excinfo.value) == (
        "this backup was written by pg_dump 16; found pg_restore 15 (/usr/bin); "
        "install PostgreSQL 16 client tools or set pg_bin_dir"
    )


@pytest.mark.parametrize(
    ("head", "fmt", "readers"),
    [
        (b"PGDMP\x01\x0f\x00\x04\x08\x01", ArchiveFormat(1, 15, 0), (16, range(16, 17))),
        (b"PGDMP\x01\x0e\x00\x04\x08\x01", ArchiveFormat(1, 14, 0), (12, range(12, 16))),
        (b"PGDMP\x01\x10\x00\x04\x08\x01", ArchiveFormat(1, 16, 0), (17, range(17, 18))),
        (b"PGDMP\x01\x0d\x00\x04\x08\x01", ArchiveFormat(1, 13, 0), (0, range(0, 12))),
        (b"PGDMP\x01\x11\x00\x04\x08\x01", ArchiveFormat(1, 17, 0), None),
    ],
)
def test_the_archive_header_tells_which_pg_restore_reads_it(
    head: bytes, fmt: ArchiveFormat, readers: tuple[int, range] | None
) -> None:
    found = archive_format(head)
    assert found == fmt
    assert found.readers() == readers
    assert str(found) == f"{fmt.major}.{fmt.minor}"


def test_a_stream_that_is_no_custom_format_archive_has_no_header() -> None:
    assert archive_format(b"--\n-- PostgreSQL database dump\n") is None
    assert archive_format(b"PGDMP\x01") is None


def test_the_embedded_fallback_is_a_setting_that_defaults_to_on() -> None:
    assert kind_options(load_settings(env={})).pg_embedded is True
    off = load_settings(env={"BACKUPCTL_PG_EMBEDDED": "false"})
    assert kind_options(off).pg_embedded is False
    with pytest.raises(ConfigError, match="pg_embedded: must be true or false"):
        load_settings(env={"BACKUPCTL_PG_EMBEDDED": "maybe"})
