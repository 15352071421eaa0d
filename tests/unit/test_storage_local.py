"""file:// storage: atomic publish, private permissions, leftovers found, keys kept inside."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backupctl.storage import open_storage
from backupctl.storage.local import LocalStorage

KEY = "shop/2026-01-01/shop-2026-01-01-b17-a1.out.zst"


class Boom(Exception):
    pass


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_write_publishes_the_bytes_on_clean_exit(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    with storage.open_write(KEY) as upload:
        upload.write(b"hello ")
        upload.write(b"world")

    assert (tmp_path / KEY).read_bytes() == b"hello world"
    assert upload.size == 11
    assert files_under(tmp_path) == [KEY]


def test_open_write_shows_nothing_under_the_final_name_until_the_block_ends(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)

    with storage.open_write(KEY) as upload:
        upload.write(b"partial")
        assert not (tmp_path / KEY).exists()
        (leftover,) = files_under(tmp_path)
        assert leftover.startswith("shop/2026-01-01/.shop-2026-01-01-b17-a1.out.zst.")
        assert leftover.endswith(".tmp")

    assert (tmp_path / KEY).read_bytes() == b"partial"


def test_an_exception_inside_open_write_leaves_no_final_file_and_no_temp_file(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)

    with pytest.raises(Boom), storage.open_write(KEY) as upload:
        upload.write(b"half a backup")
        raise Boom

    assert files_under(tmp_path) == []
    assert list(storage.keys("shop/2026-01-01/shop-")) == []


def test_a_keyboard_interrupt_inside_open_write_also_removes_the_temp_file(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)

    with pytest.raises(KeyboardInterrupt), storage.open_write(KEY) as upload:
        upload.write(b"half a backup")
        raise KeyboardInterrupt

    assert files_under(tmp_path) == []


def test_open_write_replaces_an_existing_key_atomically(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with storage.open_write(KEY) as upload:
        upload.write(b"old")

    with pytest.raises(Boom), storage.open_write(KEY) as upload:
        upload.write(b"new")
        raise Boom

    assert (tmp_path / KEY).read_bytes() == b"old"


def test_files_are_0600_and_created_folders_0700(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    storage = LocalStorage(root)

    with storage.open_write(KEY) as upload:
        upload.write(b"x")

    assert mode(root / KEY) == 0o600
    assert mode(root) == 0o700
    assert mode(root / "shop") == 0o700
    assert mode(root / "shop" / "2026-01-01") == 0o700


def test_open_read_returns_the_published_bytes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with storage.open_write(KEY) as upload:
        upload.write(b"payload")

    with storage.open_read(KEY) as fh:
        assert fh.read() == b"payload"


@pytest.mark.parametrize("key", ["../outside", "shop/../../outside", "/etc/passwd"])
def test_a_key_escaping_the_root_is_refused(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "root")

    with pytest.raises(ValueError) as excinfo, storage.open_write(key):
        pass

    assert str(excinfo.value) == f"key {key!r} leaves the storage folder"
    assert not (tmp_path / "outside").exists()
    with pytest.raises(ValueError):
        storage.delete(key)
    with pytest.raises(ValueError), storage.open_read(key):
        pass


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    storage = LocalStorage(root)

    with pytest.raises(ValueError) as excinfo, storage.open_write("link/x"):
        pass

    assert str(excinfo.value) == "key 'link/x' leaves the storage folder"
    assert list((tmp_path / "outside").iterdir()) == []


def test_keys_lists_artifacts_and_leftover_temp_files_of_a_prefix(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    folder = tmp_path / "shop" / "2026-01-01"
    folder.mkdir(parents=True)
    (folder / "shop-2026-01-01-b17-a1.out.zst").write_bytes(b"1")
    (folder / ".shop-2026-01-01-b17-a2.out.zst.ab12cd34.tmp").write_bytes(b"2")
    (folder / "shop-2026-01-01-b18-a1.out.zst").write_bytes(b"other backup")
    (folder / ".shop-2026-01-01-b18-a1.out.zst.ffffffff.tmp").write_bytes(b"other backup")

    keys = list(storage.keys("shop/2026-01-01/shop-2026-01-01-b17-a"))

    assert keys == [
        "shop/2026-01-01/.shop-2026-01-01-b17-a2.out.zst.ab12cd34.tmp",
        "shop/2026-01-01/shop-2026-01-01-b17-a1.out.zst",
    ]


def test_keys_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert list(LocalStorage(tmp_path).keys("nobody/2026-01-01/nobody-")) == []


def test_keys_without_a_folder_look_in_the_root(tmp_path: Path) -> None:
    (tmp_path / "a-1").write_bytes(b"")
    (tmp_path / ".a-2.0000.tmp").write_bytes(b"")
    (tmp_path / "b-1").write_bytes(b"")

    assert list(LocalStorage(tmp_path).keys("a-")) == [".a-2.0000.tmp", "a-1"]


def test_discard_attempts_removes_everything_of_a_prefix_but_the_kept_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    prefix = "shop/2026-01-01/shop-2026-01-01-b17-a"
    for attempt in (1, 2, 3):
        with storage.open_write(f"{prefix}{attempt}.out.zst") as upload:
            upload.write(b"x")
    leftover = tmp_path / "shop" / "2026-01-01" / ".shop-2026-01-01-b17-a4.out.zst.0badf00d.tmp"
    leftover.write_bytes(b"half")
    other = "shop/2026-01-01/shop-2026-01-01-b18-a1.out.zst"
    with storage.open_write(other) as upload:
        upload.write(b"another backup")

    removed = storage.discard_attempts(prefix, keep=f"{prefix}2.out.zst")

    assert removed == [
        "shop/2026-01-01/.shop-2026-01-01-b17-a4.out.zst.0badf00d.tmp",
        f"{prefix}1.out.zst",
        f"{prefix}3.out.zst",
    ]
    assert files_under(tmp_path) == [f"{prefix}2.out.zst", other]
    assert (tmp_path / other).read_bytes() == b"another backup"


def test_discard_attempts_without_keep_removes_every_attempt(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with storage.open_write(KEY) as upload:
        upload.write(b"x")

    assert storage.discard_attempts("shop/2026-01-01/shop-2026-01-01-b17-a", None) == [KEY]
    assert files_under(tmp_path) == []


def test_delete_of_a_missing_key_is_not_an_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    storage.delete("shop/2026-01-01/never-written")
    with storage.open_write(KEY) as upload:
        upload.write(b"x")
    storage.delete(KEY)
    storage.delete(KEY)

    assert files_under(tmp_path) == []


@pytest.mark.parametrize("key", [KEY, "app/adhoc/with space%and#hash.zst", "top-level.zst"])
def test_uri_and_key_for_round_trip(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path)

    uri = storage.uri(key)

    assert uri.startswith("file:///")
    assert storage.key_for(uri) == key


def test_uri_names_the_file_on_disk(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    assert storage.uri(KEY) == (tmp_path / KEY).as_uri()


def test_open_storage_of_a_file_url_uses_that_folder(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}/backups")

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "backups"
    with storage.open_write(KEY) as upload:
        upload.write(b"x")
    assert (tmp_path / "backups" / KEY).read_bytes() == b"x"


def test_open_storage_decodes_percent_escapes_and_accepts_localhost() -> None:
    storage = open_storage("file://localhost/var/backups/my%20backups")

    assert isinstance(storage, LocalStorage)
    assert storage.root == Path("/var/backups/my backups")


def test_file_url_with_a_remote_host_is_refused() -> None:
    with pytest.raises(ValueError) as excinfo:
        LocalStorage.from_url("file://nas.internal/backups")

    assert str(excinfo.value) == "file:// storage must be local, got host 'nas.internal'"


def test_unsupported_storage_url_is_refused() -> None:
    with pytest.raises(ValueError) as excinfo:
        open_storage("ftp://example.com/x")

    assert (
        str(excinfo.value) == "unsupported storage URL 'ftp://example.com/x' (use file:// or s3://)"
    )


def test_open_write_into_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir(mode=0o755)
    os.chmod(tmp_path / "shop", 0o755)
    storage = LocalStorage(tmp_path)

    with storage.open_write("shop/x") as upload:
        upload.write(b"x")

    assert mode(tmp_path / "shop") == 0o755
    assert mode(tmp_path / "shop" / "x") == 0o600


def test_delete_many_removes_the_files_and_a_missing_one_is_no_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    keys = [f"shop/2026-01-0{d}/shop-2026-01-0{d}-b{d}-a1.out.zst" for d in (1, 2, 3)]
    for key in keys:
        with storage.open_write(key) as upload:
            upload.write(b"x")
    keep = "wiki/2026-01-01/wiki-2026-01-01-b9-a1.out.zst"
    with storage.open_write(keep) as upload:
        upload.write(b"y")

    failed = storage.delete_many([*keys, "shop/2026-01-09/never-written.out.zst"])

    assert failed == {}
    assert files_under(tmp_path) == [keep]


def test_delete_many_says_which_keys_it_could_not_remove(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    ok = "shop/2026-01-01/shop-2026-01-01-b1-a1.out.zst"
    with storage.open_write(ok) as upload:
        upload.write(b"x")

    failed = storage.delete_many([ok, "../outside.zst"])

    assert list(failed) == ["../outside.zst"]
    assert "leaves the storage folder" in failed["../outside.zst"]
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    "key",
    [KEY, "shop/adhoc/.shop-x.out.zst.1f2e.tmp", "a b/100%.zst", "a/../b.zst", "a//b.zst"],
)
@pytest.mark.parametrize("root", ["/", "/var/backups/backupctl"])
def test_key_for_gives_back_the_key_a_uri_was_made_of(key: str, root: str) -> None:
    storage = LocalStorage(Path(root))
    expected = Path(key).as_posix() if ".." not in key else key  # Path folds "//"

    assert storage.key_for(storage.uri(key)) == expected
    assert storage.key_for(f"file://localhost{root.rstrip('/')}/{KEY}") == KEY
