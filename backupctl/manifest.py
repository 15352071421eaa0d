"""A backup's manifest: what its dump was found to hold, recorded with it in the ledger.

Every kind records the uncompressed size of its dump; `files` the regular files it
holds and their bytes; `postgres` the tables of the archive's table of contents. A
drill compares a restore with it. Fields are only ever added (old rows lack new ones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Manifest:
    """What a succeeded backup holds. None: not known for this kind (or this backup)."""

    uncompressed_bytes: int
    files: int | None = None  # files: regular files in the tar
    file_bytes: int | None = None  # files: their total size
    tables: tuple[str, ...] | None = None  # postgres: "schema.table", as in the TOC

    def as_json(self) -> dict[str, Any]:
        """The manifest as stored (jsonb): only the fields known."""
        doc: dict[str, Any] = {"uncompressed_bytes": self.uncompressed_bytes}
        if self.files is not None:
            doc["files"] = self.files
        if self.file_bytes is not None:
            doc["file_bytes"] = self.file_bytes
        if self.tables is not None:
            doc["tables"] = len(self.tables)
            doc["table_names"] = list(self.tables)
        return doc

    def dumps(self) -> str:
        """The manifest as a JSON text, for the ledger."""
        return json.dumps(self.as_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Manifest | None:
        """A manifest read back from the ledger (None: the backup has none)."""
        if doc is None:
            return None
        names = doc.get("table_names")
        return cls(
            uncompressed_bytes=int(doc["uncompressed_bytes"]),
            files=doc.get("files"),
            file_bytes=doc.get("file_bytes"),
            tables=tuple(str(n) for n in names) if names is not None else None,
        )
