"""dump -> zstd -> storage: the stored bytes, their size and sha256, and failures leave nothing."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import zstandard

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, Cancelled, EmptyBackup
from backupctl.kinds import DumpResult, Writer
from backupctl.kinds.command import CommandKind
from backupctl.manifest import Manifest
from backupctl.pipeline import Stored, dump_to_storage
from backupctl.registry import App
from backupctl.storage.local import LocalStorage

KEY = "shop/2026-01-01/shop-2026-01-01-b17-a1.out.zst"
APP = App("shop", "command", {"argv": ["true"]})
ALLOW_EMPTY = App("shop", "command", {"argv": ["true"]}, allow_empty=True)


class ChunksKind:
    """Writes the given chunks; optionally fails afterwards."""

    extension = "out"

    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks = chunks
        self.fail = fail

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        for chunk in self.chunks:
            out.write(chunk)
        if self.fail:
            raise BackupFailed("export exited with status 1: out of memory")
        return DumpResult(empty=None if any(self.chunks) else "nothing written")

    def secrets(self, app: App) -> list[str]:
        return []


def decompress(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "chunks",
    [
        [b""],
        [b"hello world\n"],
        [b"x" * 100_000, bytes(range(256)) * 1000, b"tail"],
    ],
    ids=["empty", "small", "several-chunks"],
)
def test_stored_bytes_decompress_to_the_kinds_output(tmp_path: Path, chunks: list[bytes]) -> None:
    storage = LocalStorage(tmp_path)

    stored = dump_to_storage(ChunksKind(chunks), ALLOW_EMPTY, storage, KEY, CancelToken())

    assert stored.key == KEY
    assert stored.manifest == Manifest(uncompressed_bytes=len(b"".join(chunks)))
    assert decompress((tmp_path / KEY).read_bytes()) == b"".join(chunks)


def test_recorded_size_and_sha256_are_those_of_the_stored_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    stored = dump_to_storage(ChunksKind([b"abc" * 50_000]), APP, storage, KEY, CancelToken())

    on_disk = (tmp_path / KEY).read_bytes()
    assert stored == Stored(
        key=KEY,
        size=len(on_disk),
        sha256=hashlib.sha256(on_disk).hexdigest(),
        manifest=Manifest(uncompressed_bytes=150_000),
    )
    assert stored.size < 150_000  # compressed, not the raw dump


def test_a_real_command_is_stored_compressed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    app = App("shop", "command", {"argv": [sys.executable, "-c", "print('row ' * 1000)"]})

    stored = dump_to_storage(CommandKind(), app, storage, KEY, CancelToken())

    on_disk = (tmp_path / KEY).read_bytes()
    assert decompress(on_disk) == ("row " * 1000 + "\n").encode()
    assert stored.sha256 == hashlib.sha256(on_disk).hexdigest()


def test_a_failing_kind_leaves_nothing_in_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    with pytest.raises(BackupFailed) as excinfo:
        dump_to_storage(ChunksKind([b"half" * 1000], fail=True), APP, storage, KEY, CancelToken())

    assert str(excinfo.value) == "export exited with status 1: out of memory"
    assert files_under(tmp_path) == []
    assert list(storage.keys("shop/2026-01-01/shop-")) == []


def test_a_failing_command_leaves_nothing_in_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    code = "import sys; print('partial'); sys.exit(4)"
    app = App("shop", "command", {"argv": [sys.executable, "-c", code]})

    with pytest.raises(BackupFailed) as excinfo:
        dump_to_storage(CommandKind(), app, storage, KEY, CancelToken())

    assert str(excinfo.value) == "command exited with status 4"
    assert files_under(tmp_path) == []


def test_a_cancel_arriving_as_the_dump_ends_still_stops_the_publish(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    cancel = CancelToken()

    class CancelsAtTheEnd(ChunksKind):
        def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
            result = super().dump(app, out, cancel)
            cancel.cancel("lease lost")
            return result

    with pytest.raises(Cancelled) as excinfo:
        dump_to_storage(CancelsAtTheEnd([b"complete"]), APP, storage, KEY, cancel)

    assert str(excinfo.value) == "lease lost"
    assert files_under(tmp_path) == []


def test_an_empty_dump_is_not_published_unless_the_app_allows_it(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    app = App("shop", "command", {"argv": [sys.executable, "-c", "pass"]})

    with pytest.raises(EmptyBackup) as excinfo:
        dump_to_storage(CommandKind(), app, storage, KEY, CancelToken())

    assert str(excinfo.value) == "empty backup: the command wrote no output"
    assert excinfo.value.final  # no retry this round: it would be empty again
    assert files_under(tmp_path) == []

    allowed = App("shop", "command", {"argv": [sys.executable, "-c", "pass"]}, allow_empty=True)
    stored = dump_to_storage(CommandKind(), allowed, storage, KEY, CancelToken())
    assert stored.manifest == Manifest(uncompressed_bytes=0)
    assert decompress((tmp_path / KEY).read_bytes()) == b""
