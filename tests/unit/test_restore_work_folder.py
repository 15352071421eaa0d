"""Where a files restore extracts before the rename: a parent nobody else can swap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backupctl.errors import UsageError
from backupctl.kinds.files import _work_folder


def test_a_parent_others_can_write_is_refused_naming_why(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o777)
    with pytest.raises(UsageError, match="can be written by others"):
        _work_folder(parent / "wiki")


def test_a_sticky_parent_as_tmp_is_is_fine(tmp_path: Path) -> None:
    parent = tmp_path / "sticky"
    parent.mkdir()
    parent.chmod(0o1777)
    work = _work_folder(parent / "wiki")
    assert work.parent == parent and work.name.startswith(".backupctl-restore-wiki-")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_parent_of_another_user_is_refused_as_such(tmp_path: Path) -> None:
    parent = tmp_path / "alice"
    parent.mkdir(mode=0o755)
    os.chown(parent, 65534, 65534)
    with pytest.raises(UsageError, match=r"belongs to another user \(uid 65534\)"):
        _work_folder(parent / "wiki")
