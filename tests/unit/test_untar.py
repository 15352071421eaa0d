"""Extraction of hostile and unusual archives: refused members, links last, holes kept."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from backupctl.untar import UnsafeMember, UnsafeTarget, empty_folder, extract


def archive(*members: tuple[str, str, str]) -> io.BytesIO:
    """A tar of (type, name, data-or-linkname) members: f file, d folder, s symlink,
    h hard link, c character device."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "f":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = {
                "d": tarfile.DIRTYPE,
                "s": tarfile.SYMTYPE,
                "h": tarfile.LNKTYPE,
                "c": tarfile.CHRTYPE,
            }[kind]
            if kind == "d":
                info.mode = 0o755
            info.linkname = data
            tar.addfile(info)
    raw.seek(0)
    return raw


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([("f", "/etc/cron.d/evil", "x")], "absolute path"),
        ([("f", "../escape.txt", "x")], "'..'"),
        ([("f", "a/../../escape.txt", "x")], "'..'"),
        ([("s", "d", "/tmp"), ("f", "d/evil", "x")], "beneath the link 'd'"),
        ([("h", "pw", "/etc/passwd")], "member 'pw': a hard link to '/etc/passwd', outside"),
        ([("h", "pw", "../../etc/passwd")], "'../../etc/passwd', outside the folder"),
        ([("h", "a", "a")], "not a file restored before it"),
        ([("f", "a", "x"), ("s", "a", "/etc/passwd"), ("h", "b", "a")], "not a file restored"),
        ([("h", "pw", "later.txt"), ("f", "later.txt", "x")], "not a file restored before it"),
        ([("s", "x", "a"), ("f", "x", "data")], "a link of that name"),
        ([("d", "x", ""), ("s", "x", "/etc")], "already restored"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, members: list[tuple[str, str, str]], why: str
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeMember, match="refusing unsafe archive member") as excinfo:
        extract(archive(*members), dest)
    assert why in str(excinfo.value)
    assert not (tmp_path / "escape.txt").exists()
    assert not list(tmp_path.rglob("evil"))


def test_links_are_restored_as_links_whatever_they_point_to(tmp_path: Path) -> None:
    members = [
        ("f", "a.txt", "hello"),
        ("s", "current", "/srv/wiki/releases/5"),
        ("s", "up", "../../outside"),
        ("s", "rel", "a.txt"),
        ("h", "hard", "a.txt"),
    ]
    report = extract(archive(*members), tmp_path)
    assert os.readlink(tmp_path / "current") == "/srv/wiki/releases/5"
    assert os.readlink(tmp_path / "up") == "../../outside"
    assert (tmp_path / "rel").read_text() == "hello"
    assert os.stat(tmp_path / "hard").st_ino == os.stat(tmp_path / "a.txt").st_ino
    assert (report.symlinks, report.hardlinks, report.files) == (3, 1, 1)


def test_a_device_in_the_archive_is_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    report = extract(archive(("c", "null0", ""), ("f", "ok.txt", "fine")), tmp_path)
    assert report.skipped == ["null0"]
    assert (tmp_path / "ok.txt").read_text() == "fine"
    assert not (tmp_path / "null0").exists()
    assert "null0" in caplog.text


def test_zero_blocks_come_back_as_holes(tmp_path: Path) -> None:
    size = 8 << 20
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("sparse")
        info.size = size
        tar.addfile(info, io.BytesIO(b"head" + bytes(size - 8) + b"tail"))
    raw.seek(0)
    extract(raw, tmp_path)
    restored = tmp_path / "sparse"
    assert restored.stat().st_size == size
    with restored.open("rb") as fh:
        assert fh.read(4) == b"head"
        fh.seek(size - 4)
        assert fh.read() == b"tail"
    if restored.stat().st_blocks * 512 >= size:
        pytest.skip("this filesystem does not keep holes")
    assert restored.stat().st_blocks * 512 < size // 4


def test_a_target_others_can_write_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "shared"
    dest.mkdir()
    dest.chmod(0o777)
    with pytest.raises(UnsafeTarget, match="no one else can write"):
        extract(archive(("f", "a.txt", "x")), dest)
    assert not (dest / "a.txt").exists()


def test_leftovers_in_read_only_folders_are_removed(tmp_path: Path) -> None:
    members = [("d", "locked", ""), ("f", "locked/a.txt", "x"), ("d", "locked/deeper", "")]
    extract(archive(*members), tmp_path)
    (tmp_path / "locked" / "deeper").chmod(0)
    (tmp_path / "locked").chmod(0o500)
    empty_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []
