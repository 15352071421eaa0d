"""Small helpers for messages: counted nouns, lists kept short, text on one line."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Words whose plural is not word + "s".
_IRREGULAR = {"was": "were", "is": "are", "has": "have"}


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 backup', '2 backups' (or `nouns` when the plural is not noun + 's')."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {nouns or _IRREGULAR.get(noun) or noun + 's'}"


def human_size(size: int | None) -> str:
    """'812 B', '12.0 KB', '1.2 GB' (powers of 1000); '-' for None."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError


def short_list(names: Sequence[str], total: int | None = None, limit: int = 5) -> str:
    """'a, b, c', or 'a, b, c, d, e and 7 more' past `limit` names.

    `total` is how many there are when `names` is only the first few of them (a
    sample read from the ledger), so a message about a night of 100k apps stays a line.
    """
    total = len(names) if total is None else total
    shown = ", ".join(names[:limit])
    hidden = total - min(len(names), limit)
    return shown + (f" and {hidden} more" if hidden > 0 else "")


_BREAK_CHARS = "\r\n\v\f\x85\u2028\u2029"
_BREAKS = re.compile(f"[{_BREAK_CHARS}]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\t]+")


def one_line(text: str) -> str:
    """`text` on one line: line breaks become "; ", other control characters a space
    (an error may carry a program's whole stderr tail)."""
    text = _BREAKS.sub("; ", text.strip(_BREAK_CHARS))
    return _CONTROLS.sub(" ", text).rstrip()
