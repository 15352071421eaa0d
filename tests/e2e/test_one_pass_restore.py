"""One pass: postgres and files restores read the artifact once, checked as it streams,
and a damaged one leaves nothing in the target (pg_restore killed before it commits,
the files' temporary folder removed); also when SIGTERM stops them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import zstandard

from tests.conftest import Setup
from tests.e2e.conftest import MakeDb
from tests.e2e.test_postgres_and_restore import BIN, NIGHT, fingerprint, pg_app, seed_shop
from tests.tools import need_tool

WORK_PREFIX = ".backupctl-restore-"


def backed_up(setup: Setup, make_db: MakeDb, server: str, rows: int = 2_000) -> Path:
    """A shop database and a data folder backed up for NIGHT; the folder's path."""
    source = make_db(server)
    seed_shop(source, rows=rows)
    setup.env["SHOP_DSN"] = source
    data = setup.root / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha " * 1000)
    (data / "sub").mkdir()
    (data / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    setup.write_registry(
        pg_app("shop") + f'\n[[app]]\nid = "data"\nkind = "files"\npath = "{data}"\n'
    )
    done = setup.cli("run-nightly", "--date", NIGHT)
    assert done.returncode == 0, done.stderr
    return data


def artifact_of(setup: Setup, app: str) -> Path:
    [(uri,)] = setup.query(
        "SELECT artifact_uri FROM backupctl.backups WHERE app_id = %s AND run_date = %s", app, NIGHT
    )
    return Path(str(uri).removeprefix("file://"))


def database_exists(server: str, dsn: str) -> bool:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return found is not None


def public_tables(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert row is not None
    return int(row[0])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(WORK_PREFIX))


def restore(setup: Setup, app: str, to: str) -> subprocess.CompletedProcess[str]:
    return setup.cli("restore", app, "--date", NIGHT, "--to", to, BACKUPCTL_PG_BIN_DIR=BIN)


@pytest.mark.parametrize("damage", ["ledger sha256", "bytes appended"])
def test_a_mismatch_pg_restore_would_accept_is_killed_before_it_commits(
    setup: Setup, make_db: MakeDb, pg_server_url: str, damage: str
) -> None:
    # The data is intact, so pg_restore would restore all of it: only holding back the
    # last piece until the check keeps it from committing.
    backed_up(setup, make_db, pg_server_url)
    if damage == "ledger sha256":
        setup.query("UPDATE backupctl.backups SET sha256 = %s WHERE app_id = 'shop'", "0" * 64)
    else:  # a longer artifact than recorded: zstd ends at its frame, the size tells
        with artifact_of(setup, "shop").open("ab") as fh:
            fh.write(b"trailing bytes the ledger never saw")

    existing = make_db(pg_server_url)
    into_existing = restore(setup, "shop", existing)
    missing = make_db(pg_server_url, create=False)
    into_missing = restore(setup, "shop", missing)

    for result in (into_existing, into_missing):
        assert result.returncode == 1, result.stderr
        assert "restore failed: checksum mismatch" in result.stderr
    assert public_tables(existing) == 0  # rolled back
    assert "created database" in into_missing.stderr
    assert "dropped database" in into_missing.stderr
    assert not database_exists(pg_server_url, missing)
    audit = setup.query("SELECT exit_code FROM backupctl.invocations WHERE command = 'restore'")
    assert audit == [(1,), (1,)]


def test_a_flipped_byte_leaves_the_database_and_the_folder_untouched(
    setup: Setup, make_db: MakeDb, pg_server_url: str
) -> None:
    backed_up(setup, make_db, pg_server_url)
    for app in ("shop", "data"):
        path = artifact_of(setup, app)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    missing = make_db(pg_server_url, create=False)
    empty = setup.root / "restored" / "empty"
    empty.mkdir(parents=True)
    os.utime(empty, (1_000_000_000, 1_000_000_000))
    new = setup.root / "restored" / "new"

    results = [
        restore(setup, "shop", missing),
        restore(setup, "data", str(empty)),
        restore(setup, "data", str(new)),
    ]
    for result in results:
        assert result.returncode == 1, result.stderr
        assert "restore failed: checksum mismatch" in result.stderr
    assert not database_exists(pg_server_url, missing)
    assert list(empty.iterdir()) == [] and empty.stat().st_mtime == 1_000_000_000
    assert not new.exists()
    assert leftovers(setup.root / "restored") == []


def test_a_files_restore_appears_whole_and_zstd_reads_the_artifact(
    setup: Setup, make_db: MakeDb, pg_server_url: str
) -> None:
    data = backed_up(setup, make_db, pg_server_url)
    zstd = need_tool("zstd", "apt-get install zstd")
    target = setup.root / "restored"
    target.mkdir()
    (target / "elsewhere").mkdir()
    (target / "link").symlink_to(target / "elsewhere")
    refused = restore(setup, "data", str(target / "link"))
    assert refused.returncode == 2 and "is a symbolic link" in refused.stderr
    assert (target / "link").is_symlink() and list((target / "elsewhere").iterdir()) == []
    done = restore(setup, "data", str(target / "wiki"))
    assert done.returncode == 0, done.stderr
    assert (target / "wiki" / "sub" / "b.bin").read_bytes() == (data / "sub" / "b.bin").read_bytes()
    assert leftovers(target) == []
    # The artifacts are compressed by several zstd workers: still one stream any zstd reads.
    for app in ("data", "shop"):
        unpacked = subprocess.run(
            [zstd, "-dc", str(artifact_of(setup, app))], capture_output=True, check=True
        ).stdout
        with artifact_of(setup, app).open("rb") as fh:
            ours = zstandard.ZstdDecompressor().stream_reader(fh).read()
        assert unpacked == ours and len(unpacked) > 100_000


def terminate_when(
    setup: Setup,
    args: list[str],
    started: Callable[[], bool],
    done: Callable[[], bool],
    sig: signal.Signals = signal.SIGTERM,
) -> str:
    """`sig` to `backupctl ARGS` once `started()`; a restore that outran us retries.
    Returns its stderr, after checking exit 1 and the stop's message."""
    for _ in range(3):
        proc = setup.start(*args, BACKUPCTL_PG_BIN_DIR=BIN)
        deadline = time.monotonic() + 120
        stopped = False
        while time.monotonic() < deadline and proc.poll() is None:
            if started():
                proc.send_signal(sig)
                stopped = True
                break
            time.sleep(0.005)
        _out, err = proc.communicate(timeout=120)
        if stopped and proc.returncode != 0:
            assert proc.returncode == 1, err
            assert f"stopped by {sig.name}; the target was left as it was" in err
            return err
        assert done(), err  # it finished before the signal: undo it, try again
    raise AssertionError("the restore never ran long enough to be stopped")


def test_sigterm_or_ctrl_c_mid_restore_leaves_no_folder_and_no_database(
    setup: Setup, make_db: MakeDb, pg_server_url: str
) -> None:
    data = backed_up(setup, make_db, pg_server_url, rows=400_000)
    for i in range(8):  # a restore of a moment: room to see it running
        (data / f"big-{i}.bin").write_bytes(os.urandom(8_000_000))
    setup.query("DELETE FROM backupctl.backups WHERE app_id = 'data'")
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    target = setup.root / "restored"
    target.mkdir()
    wiki = target / "wiki"

    def undo_folder() -> bool:
        import shutil

        shutil.rmtree(wiki)
        return True

    terminate_when(
        setup,
        ["restore", "data", "--date", NIGHT, "--to", str(wiki)],
        lambda: bool(leftovers(target)),
        undo_folder,
    )
    assert leftovers(target) == [] and not wiki.exists()

    missing = make_db(pg_server_url, create=False)

    def undo_database() -> bool:
        assert fingerprint(missing)["customers"][0] > 0
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            name = psycopg.conninfo.conninfo_to_dict(missing)["dbname"]
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return True

    err = terminate_when(
        setup,
        ["restore", "shop", "--date", NIGHT, "--to", missing],
        lambda: database_exists(pg_server_url, missing),
        undo_database,
        signal.SIGINT,  # Ctrl-C
    )
    assert "dropped database" in err
    assert not database_exists(pg_server_url, missing)
