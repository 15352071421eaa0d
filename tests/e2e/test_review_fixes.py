"""Edge cases at the CLI: malformed ledger URLs, future dates, retry and the registry,
dead holders on their last attempt in enqueue mode, ad-hoc backups killed mid-way."""

from __future__ import annotations

import hashlib
import io
import signal
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from tests.conftest import Setup, kill_tree, wait_for
from tests.e2e.test_nightly_cli import has_running_row, quick_apps, rows, slow_app
from tests.e2e.test_queue_cli import Queue, standard_queue  # noqa: F401 (fixture)

NIGHT = "2026-11-28"


def test_a_malformed_database_url_is_a_config_error_without_its_password(setup: Setup) -> None:
    quick_apps(setup)
    result = setup.cli(
        "run-nightly",
        "--date",
        NIGHT,
        BACKUPCTL_DATABASE_URL="postgresql://backupctl:s3cret%zz@db.internal/ledger",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("backupctl: error: database_url: ")
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    check = setup.cli("check", BACKUPCTL_DATABASE_URL="postgresql://u:s3cret%zz@h/x")
    assert check.returncode == 3 and check.stdout.startswith("UNKNOWN: database_url: ")


def test_a_date_in_the_future_is_refused_and_records_nothing(setup: Setup) -> None:
    quick_apps(setup)
    future = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    result = setup.cli("run-nightly", "--date", future)
    assert result.returncode == 2
    assert f"--date {future} is in the future" in result.stderr
    tables = setup.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'backupctl'"
    )
    assert tables == [(0,)]


def test_retry_works_on_the_night_as_planned_not_on_todays_registry(setup: Setup) -> None:
    quick_apps(setup, n=1)
    broken = '\n[[app]]\nid = "broken"\nkind = "command"\nargv = ["false"]\n'
    setup.write_registry(setup.registry.read_text() + broken)
    assert setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1").returncode == 1

    setup.write_registry(
        setup.registry.read_text().replace('["false"]', '["echo", "fixed"]')
        + '\n[[app]]\nid = "added-later"\nkind = "command"\nargv = ["echo", "new"]\n'
    )
    result = setup.cli("retry", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(rows(setup)) == ["broken", "files-app"]
    assert rows(setup)["broken"][:2] == ("succeeded", 2)


def test_enqueue_mode_fails_a_row_whose_holder_died_on_its_last_attempt(
    setup: Setup,
    standard_queue: Queue,  # noqa: F811
) -> None:
    setup.write_registry(slow_app("slow", chunks=50, delay=0.1))
    env = {"BACKUPCTL_RUN_LEASE": "1s", "BACKUPCTL_RUN_MAX_ATTEMPTS": "1"}
    assert setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env).returncode == 0
    worker = setup.start("worker", **env)
    wait_for(lambda: any(f.endswith(".tmp") for f in setup.files()))
    kill_tree(worker)
    wait_for(lambda: has_running_row(setup, lease_expired=True))

    again = setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env)

    assert again.returncode == 1, again.stdout + again.stderr
    status, attempts, *_, error = rows(setup)["slow"]
    assert (status, attempts) == ("failed", 1)
    assert "lease expired" in str(error)
    assert setup.files() == []  # the dead worker's temp file is gone


def test_an_adhoc_backup_killed_mid_way_is_failed_by_the_next_one(setup: Setup) -> None:
    setup.write_registry(slow_app("slow", chunks=50, delay=0.1))
    proc = setup.start("backup", "slow", BACKUPCTL_RUN_LEASE="1s")
    wait_for(lambda: any(f.endswith(".tmp") for f in setup.files()))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    wait_for(lambda: has_running_row(setup, lease_expired=True))
    setup.write_registry(slow_app("slow", chunks=1, delay=0))

    result = setup.cli("backup", "slow", BACKUPCTL_RUN_LEASE="1s")

    assert result.returncode == 0, result.stdout + result.stderr
    found = setup.query("SELECT id, status FROM backupctl.backups ORDER BY id")
    assert [status for _, status in found] == ["failed", "succeeded"]
    assert len(setup.files()) == 1 and not setup.files()[0].endswith(".tmp")


def test_a_read_only_ledger_is_unknown_to_check_and_exit_3_elsewhere(setup: Setup) -> None:
    quick_apps(setup)
    dbname = setup.query("SELECT current_database()")[0][0]
    setup.query(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')

    check = setup.cli("check")
    run = setup.cli("run-nightly", "--date", NIGHT)

    assert check.returncode == 3
    assert check.stdout.startswith("UNKNOWN: the ledger database refused")
    assert "read-only transaction" in check.stdout
    assert run.returncode == 3
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../escape.txt", "climbs out"),
        ("/etc/cron.d/evil", "absolute path"),
        ("link:/tmp", "beneath the link 'innocent'"),
        ("link:../..", "beneath the link 'innocent'"),
    ],
)
def test_restore_refuses_archive_members_that_leave_the_folder(
    setup: Setup, member: str, why: str
) -> None:
    data = setup.root / "data"
    data.mkdir()
    (data / "ok.txt").write_text("fine")
    setup.write_registry(f'[[app]]\nid = "up"\nkind = "files"\npath = "{data}"\n')
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    [(backup_id, uri)] = setup.query("SELECT id, artifact_uri FROM backupctl.backups")
    # A hostile artifact whose ledger row matches it: only the extraction guard is left.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("ok.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"fine"))
        if member.startswith("link:"):
            # Links are data and restore as links; what is refused is a member beneath one.
            link = tarfile.TarInfo("innocent")
            link.type, link.linkname = tarfile.SYMTYPE, member.removeprefix("link:")
            tar.addfile(link)
            evil = tarfile.TarInfo("innocent/escape.txt")
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
        else:
            evil = tarfile.TarInfo(member)
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
    blob = zstandard.ZstdCompressor().compress(raw.getvalue())
    Path(str(uri).removeprefix("file://")).write_bytes(blob)
    setup.query(
        "UPDATE backupctl.backups SET sha256 = %s, size_bytes = %s WHERE id = %s",
        hashlib.sha256(blob).hexdigest(),
        len(blob),
        backup_id,
    )
    target = setup.root / "restored"

    result = setup.cli("restore", "up", "--date", NIGHT, "--to", str(target))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "refusing unsafe archive member" in result.stderr and why in result.stderr
    assert not target.exists()
    assert not (setup.root / "escape.txt").exists()
