"""The header of a pg_dump custom-format archive: which pg_restore can read it.

For backups whose pg_dump was not recorded (made before backupctl recorded it), the
archive itself says enough: it starts with "PGDMP" and the archive format version
(major, minor, revision bytes), and pg_restore reads only formats up to its own.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"PGDMP"
HEADER_SIZE = len(MAGIC) + 3

# Format version -> the PostgreSQL release whose pg_dump first wrote it (and so the
# oldest pg_restore that reads it). Older formats: any pg_restore still in use.
_FIRST_WRITTEN_BY = {(1, 14): 12, (1, 15): 16, (1, 16): 17}
_OLDEST_KNOWN = min(_FIRST_WRITTEN_BY)


@dataclass(frozen=True)
class ArchiveFormat:
    major: int
    minor: int
    revision: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def readers(self) -> tuple[int, range] | None:
        """(the oldest pg_restore major that reads this format, the pg_dump majors that
        write it), or None for a format newer than any this table knows."""
        key = (self.major, self.minor)
        if key < _OLDEST_KNOWN:
            return 0, range(0, _FIRST_WRITTEN_BY[_OLDEST_KNOWN])
        if key not in _FIRST_WRITTEN_BY:
            return None
        first = _FIRST_WRITTEN_BY[key]
        later = [m for k, m in _FIRST_WRITTEN_BY.items() if k > key]
        return first, range(first, min(later) if later else first + 1)


def archive_format(head: bytes) -> ArchiveFormat | None:
    """The format version in the first bytes of an archive, or None if `head` is not
    the start of a custom-format archive."""
    if len(head) < HEADER_SIZE or not head.startswith(MAGIC):
        return None
    major, minor, revision = head[len(MAGIC) : HEADER_SIZE]
    return ArchiveFormat(major, minor, revision)
