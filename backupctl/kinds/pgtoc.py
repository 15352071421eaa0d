"""The tables of a pg_dump custom-format archive, read from its table of contents
(TOC) as the archive streams past: the list `pg_restore --list` shows.

pg_dump writing to a pipe puts the header and the whole TOC first, then the data, so
the TOC is known once its first bytes have passed, with no second read of the dump
(or of storage) and no second program. Only those first bytes are buffered, up to
MAX_TOC_BYTES (a schema of many thousands of tables is a few MB); past that, or in
an archive format newer than this reader knows, the tables are unknown (None), never
a failed backup.

The layout follows PostgreSQL's src/bin/pg_dump/pg_backup_archiver.c (ReadHead,
ReadToc, ReadInt, ReadStr, ReadOffset) and pg_backup_custom.c (_ReadExtraToc).
"""

from __future__ import annotations

import logging

from backupctl.kinds import Writer
from backupctl.kinds.pgarchive import MAGIC

log = logging.getLogger(__name__)

MAX_TOC_BYTES = 64 << 20
# Formats this reader knows: 1.10 (PostgreSQL 9.0) to 1.16 (17).
OLDEST, NEWEST = (1, 10), (1, 16)
CUSTOM_FORMAT = 1


class _NeedMore(Exception):
    """The TOC goes on past the bytes seen so far."""


class Unreadable(Exception):
    """Not a custom-format archive this reader knows."""


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.int_size = 4
        self.off_size = 8

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _NeedMore
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _NeedMore
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def number(self) -> int:
        """ReadInt: a sign byte, then int_size bytes, least significant first."""
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def text(self) -> str | None:
        """ReadStr: a length (negative: NULL), then that many bytes."""
        length = self.number()
        if length < 0:
            return None
        if length > MAX_TOC_BYTES:
            raise Unreadable(f"a string of {length} bytes in the TOC")
        return self.take(length).decode("utf-8", "replace")


def read_tables(head: bytes) -> tuple[str, ...]:
    """The tables ("schema.name") in the TOC at the start of an archive. Raises
    _NeedMore if `head` ends before the TOC does, Unreadable if it is not a custom
    archive of a known format."""
    cur = _Cursor(head)
    if cur.take(len(MAGIC)) != MAGIC:
        raise Unreadable("not a pg_dump custom-format archive")
    version = (cur.byte(), cur.byte())
    cur.byte()  # revision
    if not OLDEST <= version <= NEWEST:
        raise Unreadable(f"archive format {version[0]}.{version[1]} is not one this reader knows")
    cur.int_size = cur.byte()
    cur.off_size = cur.byte()
    if cur.byte() != CUSTOM_FORMAT:
        raise Unreadable("not a custom-format archive")
    if version >= (1, 15):
        cur.byte()  # compression algorithm
    else:
        cur.number()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        cur.number()
    cur.text()  # database name
    cur.text()  # server version
    cur.text()  # pg_dump version

    tables = []
    for _ in range(cur.number()):
        cur.number()  # dump id
        cur.number()  # had dumper
        cur.text()  # table oid
        cur.text()  # oid
        tag, desc = cur.text(), cur.text()
        if version >= (1, 11):
            cur.number()  # section
        cur.text()  # definition
        cur.text()  # drop statement
        cur.text()  # copy statement
        namespace = cur.text()
        cur.text()  # tablespace
        if version >= (1, 14):
            cur.text()  # table access method
        if version >= (1, 16):
            cur.number()  # relkind
        cur.text()  # owner
        cur.text()  # "with oids"
        while cur.text() is not None:  # dependencies, ended by NULL
            pass
        flag = cur.byte()  # the data's offset (custom format): a flag, then off_size bytes
        if flag not in (1, 2, 3):
            raise Unreadable(f"unexpected offset flag {flag} in the TOC")
        cur.take(cur.off_size)
        if desc == "TABLE" and tag is not None:  # plain and partitioned tables
            tables.append(f"{namespace}.{tag}" if namespace else tag)
    return tuple(tables)


class TocTee:
    """A writer that passes an archive on to `out` and reads its TOC on the way.
    `tables` is set once the TOC has passed; None until then, or when unknown."""

    def __init__(self, out: Writer, limit: int = MAX_TOC_BYTES) -> None:
        self._out = out
        self._limit = limit
        self._head: bytearray | None = bytearray()
        self.tables: tuple[str, ...] | None = None
        self.problem: str | None = None  # why the tables are unknown

    def write(self, data: bytes, /) -> int:
        self._out.write(data)
        if self._head is not None:
            self._feed(data)
        return len(data)

    def _feed(self, data: bytes) -> None:
        assert self._head is not None
        self._head += data[: self._limit - len(self._head)]
        try:
            self.tables = read_tables(bytes(self._head))
        except _NeedMore:
            if len(self._head) < self._limit:
                return
            self.problem = f"its table of contents is larger than {self._limit >> 20} MiB"
        except Unreadable as exc:
            self.problem = str(exc)
        self._head = None  # done: the rest of the archive is data

    def finish(self) -> tuple[str, ...] | None:
        """The tables, once the whole archive has passed (None: unknown, logged)."""
        if self._head is not None and self.problem is None:
            self.problem = "the archive ended inside its table of contents"
        return self.tables
