"""A succeeded backup must restore: a files tree with links, FIFOs, sockets, hard links,
modes, owners, unicode names, old mtimes and holes; a Postgres database whose roles the
target server lacks."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from backupctl.kinds.postgres import embedded_bin_dir
from tests.conftest import Setup
from tests.tools import need_tool

NIGHT = "2026-11-28"
OLD = 946_684_800  # 2000-01-01
BIN = str(embedded_bin_dir())


def make_tree(root: Path) -> None:
    """Everything a real deployment folder holds that a naive tar restore gets wrong."""
    (root / "releases" / "5").mkdir(parents=True)
    (root / "releases" / "5" / "app.py").write_text("print('hi')\n")
    (root / "current").symlink_to(root / "releases" / "5")  # absolute, as deployments do
    (root / "rel-link").symlink_to("releases/5/app.py")
    (root / "dangling").symlink_to("/nonexistent/target")
    (root / "private").mkdir(mode=0o750)
    os.chmod(root / "private", 0o750)
    (root / "private" / "sécret-ünïcode.txt").write_text("ünïcode\n")
    os.link(root / "releases" / "5" / "app.py", root / "private" / "hard-link")
    os.mkfifo(root / "queue.fifo", 0o640)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "app.sock"))
    with (root / "sparse.img").open("wb") as fh:
        fh.seek(50 << 20)
        fh.write(b"end")
    (root / "old.txt").write_text("from 2000\n")
    os.utime(root / "old.txt", (OLD, OLD))
    os.utime(root / "rel-link", (OLD, OLD), follow_symlinks=False)
    if os.geteuid() == 0:
        os.chown(root / "old.txt", 65534, 65534)  # nobody
        os.lchown(root / "rel-link", 65534, 65534)
    os.utime(root / "private", (OLD, OLD))


Entry = tuple[int, int, int, int, int, str | None, str | None]


def inventory(root: Path) -> dict[str, Entry]:
    """Type, mode, owner, mtime and link target of everything under `root` (inodes
    shown as hard-link groups)."""
    found: dict[str, Entry] = {}
    groups: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = path.relative_to(root).as_posix()
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            group = groups.setdefault(st.st_ino, rel) if stat.S_ISREG(st.st_mode) else None
            # A symlink's own mode is always 0777; its mtime is compared all the same.
            found[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                int(st.st_mtime),
                link,
                group,
            )
    return found


def test_a_files_backup_restores_the_tree_as_it_was(setup: Setup) -> None:
    source = setup.root / "wiki"
    source.mkdir()
    make_tree(source)
    os.utime(source / "releases", (OLD, OLD))
    setup.write_registry(f'[[app]]\nid = "wiki"\nkind = "files"\npath = "{source}"\n')

    backed = setup.cli("run-nightly", "--date", NIGHT)
    assert backed.returncode == 0, backed.stdout + backed.stderr
    assert "app.sock" in backed.stderr and "skipped 1 entry" in backed.stderr

    target = setup.root / "restored"
    restored = setup.cli("restore", "wiki", "--date", NIGHT, "--to", str(target))
    assert restored.returncode == 0, restored.stdout + restored.stderr

    (source / "app.sock").unlink()  # sockets are not backed up, as with tar
    diff = subprocess.run(
        ["diff", "-r", "--no-dereference", str(source), str(target)],
        capture_output=True,
        text=True,
    )
    # diff cannot compare FIFOs and says so, whatever they are: every other line is a difference.
    differences = [line for line in diff.stdout.splitlines() if "is a fifo while file" not in line]
    assert diff.returncode in (0, 1) and not differences and not diff.stderr, diff.stdout
    assert inventory(target) == inventory(source)
    assert stat.S_IMODE(os.stat(target / "private").st_mode) == 0o750
    assert os.readlink(target / "current") == str(source / "releases" / "5")
    assert (target / "sparse.img").stat().st_size == (50 << 20) + 3
    if (target / "sparse.img").stat().st_blocks * 512 >= 50 << 20:
        pytest.skip("this filesystem does not keep holes (all else was checked)")


@pytest.mark.skipif(os.geteuid() != 0, reason="owners come back only when root restores")
def test_as_root_no_same_owner_gives_the_files_to_root(setup: Setup) -> None:
    source = setup.root / "data"
    source.mkdir()
    (source / "theirs.txt").write_text("x")
    os.chown(source / "theirs.txt", 65534, 65534)
    setup.write_registry(f'[[app]]\nid = "data"\nkind = "files"\npath = "{source}"\n')
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    same = setup.root / "same"
    mine = setup.root / "mine"
    assert setup.cli("restore", "data", "--to", str(same)).returncode == 0
    assert setup.cli("restore", "data", "--to", str(mine), "--no-same-owner").returncode == 0
    assert (same / "theirs.txt").stat().st_uid == 65534
    assert (mine / "theirs.txt").stat().st_uid == 0


@pytest.fixture
def role_db(pg_server_url: str) -> Iterator[tuple[str, str, str]]:
    """A database owned by a role of its own, with a GRANT to a second role:
    (database URL, owner role, reader role); all dropped at the end."""
    tag = f"{os.getpid()}_{id(object()) % 100000}"
    owner, reader, name = f"shopowner_{tag}", f"shopreader_{tag}", f"roles_{tag}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}"')
        conn.execute(f'CREATE ROLE "{reader}"')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    url = make_conninfo(pg_server_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET ROLE "{owner}"')
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, total numeric)")
        conn.execute("INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g")
        conn.execute(f'GRANT SELECT ON orders TO "{reader}"')
    yield url, owner, reader
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in (owner, reader):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_postgres_restore_onto_a_server_without_the_roles_names_the_way_out(
    setup: Setup, role_db: tuple[str, str, str], pg_server_url: str, make_db: object
) -> None:
    assert callable(make_db)
    url, owner, reader = role_db
    setup.env["SHOP_DSN"] = url
    setup.write_registry(
        f'[[app]]\nid = "shop"\nkind = "postgres"\ndsn_env = "SHOP_DSN"\npg_bin_dir = "{BIN}"\n'
    )
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    with psycopg.connect(pg_server_url, autocommit=True) as conn:  # the fresh server
        conn.execute(f'DROP DATABASE "{psycopg.conninfo.conninfo_to_dict(url)["dbname"]}"')
        conn.execute(f'DROP ROLE "{owner}"')
        conn.execute(f'DROP ROLE "{reader}"')

    target = make_db(pg_server_url, create=False)
    failed = setup.cli("restore", "shop", "--to", target)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "does not exist" in failed.stderr
    assert "--no-owner --no-privileges" in failed.stderr

    done = setup.cli("restore", "shop", "--to", target, "--no-owner", "--no-privileges")
    assert done.returncode == 0, done.stdout + done.stderr
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (500,)


def test_the_restored_tree_is_what_gnu_tar_would_make_of_the_same_folder(
    setup: Setup, tmp_path: Path
) -> None:
    """The reference: GNU tar's own copy of the folder, compared entry by entry."""
    tar = need_tool("tar", "GNU tar (apt-get install tar)")
    source = setup.root / "wiki"
    source.mkdir()
    make_tree(source)
    (source / "app.sock").unlink()
    setup.write_registry(f'[[app]]\nid = "wiki"\nkind = "files"\npath = "{source}"\n')
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    ours = setup.root / "ours"
    assert setup.cli("restore", "wiki", "--to", str(ours)).returncode == 0

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    packed = subprocess.run(
        [tar, "-C", str(source), "--sparse", "-cf", "-", "."], capture_output=True, check=True
    )
    subprocess.run(
        [tar, "-C", str(theirs), "--same-permissions", "-xf", "-"],
        input=packed.stdout,
        check=True,
    )
    mask = ~(stat.S_ISUID | stat.S_ISGID)
    expected = {k: (v[0], v[1] & mask, *v[2:]) for k, v in inventory(theirs).items()}
    assert inventory(ours) == expected
