"""dump -> zstd [-> age] -> sha256/size -> storage, as one stream with bounded memory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import IO, cast

import zstandard

from backupctl.cancel import CancelToken
from backupctl.encryption import encrypting
from backupctl.errors import EmptyBackup
from backupctl.kinds import Counting, Dumper
from backupctl.manifest import Manifest
from backupctl.registry.model import App
from backupctl.storage import Storage, Upload

ZSTD_LEVEL = 3
# zstd's own worker threads compress while this one reads the dump: one frame, as
# `zstd -T2` writes, that any zstd reads. One worker kept pace with the zstd program
# only (0.93-0.97 of `pg_dump | zstd -3`); with a worker per core the compression keeps
# up with pg_dump. 1 MiB jobs keep the buffers small (a few MiB per worker; the default
# job size added ~40 MB of memory); more than 4 workers would only add buffers.
MAX_THREADS = 4


def compression_threads(cpus: int | None = None) -> int:
    """zstd worker threads for one backup's compression: one per core, 1 to MAX_THREADS."""
    return max(1, min(MAX_THREADS, cpus if cpus is not None else os.cpu_count() or 1))


COMPRESSION = zstandard.ZstdCompressionParameters.from_level(
    ZSTD_LEVEL, threads=compression_threads(), job_size=1 << 20
)


class _Hashing:
    """Counts and hashes the bytes that reach storage (what `verify` re-reads)."""

    def __init__(self, inner: Upload) -> None:
        self._inner = inner
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._inner.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str
    manifest: Manifest
    written_by: str | None = None  # the program that wrote the dump, e.g. "pg_dump 16.2"


def dump_to_storage(
    kind: Dumper,
    app: App,
    storage: Storage,
    key: str,
    cancel: CancelToken,
    recipients: Sequence[str] = (),
) -> Stored:
    """Stream the app's dump, compressed, then encrypted to `recipients` (if any), to
    `key`; publish only if every step succeeded and the dump is not empty (unless the
    app allows that: allow_empty)."""
    with storage.open_write(key) as upload:
        hashing = _Hashing(upload)
        # Compressed, then encrypted: ciphertext does not compress.
        layer: AbstractContextManager[object] = (
            encrypting(hashing, recipients) if recipients else nullcontext(hashing)
        )
        with layer as sink:  # leaving it writes the age file's last chunk
            compressor = zstandard.ZstdCompressor(compression_params=COMPRESSION)
            with compressor.stream_writer(cast(IO[bytes], sink), closefd=False) as zst:
                raw = Counting(zst)
                result = kind.dump(app, raw, cancel)
        # A cancel that arrived while the dump finished must still stop the publish.
        cancel.check()
        if result.empty is not None and not app.allow_empty:
            raise EmptyBackup(f"empty backup: {result.empty}")  # the upload is abandoned
        upload.set_sha256(hashing.sha256.hexdigest())
    manifest = Manifest(uncompressed_bytes=raw.count, fields=dict(result.manifest))
    return Stored(
        key=key,
        size=hashing.size,
        sha256=hashing.sha256.hexdigest(),
        manifest=manifest,
        written_by=result.written_by,
    )
