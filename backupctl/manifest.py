"""A backup's manifest: what its dump was found to hold, recorded with it in the ledger.

Every kind records the uncompressed size of its dump; the rest is the kind's own
(its DumpResult.manifest: `files` and `file_bytes` for files, `tables` and
`table_names` for postgres, ...), which only that kind's drill reads. Fields are
only ever added (old rows lack new ones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Manifest:
    """What a succeeded backup holds."""

    uncompressed_bytes: int
    # The kind's own fields, as JSON values; a field missing is not known for this
    # kind (or this backup).
    fields: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The manifest as stored (jsonb)."""
        return {"uncompressed_bytes": self.uncompressed_bytes, **self.fields}

    def dumps(self) -> str:
        """The manifest as a JSON text, for the ledger."""
        return json.dumps(self.as_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Manifest | None:
        """A manifest read back from the ledger (None: the backup has none)."""
        if doc is None:
            return None
        fields = {k: v for k, v in doc.items() if k != "uncompressed_bytes"}
        return cls(uncompressed_bytes=int(doc["uncompressed_bytes"]), fields=fields)
