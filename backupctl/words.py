"""Wording shared by the commands' output."""

from __future__ import annotations

import re
from collections.abc import Sequence

_BREAK_CHARS = "\r\n\v\f\x85\u2028\u2029"
_BREAKS = re.compile(f"[{_BREAK_CHARS}]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\t]+")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun in the right number: "1 app", "2 apps", "0 apps"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def names(ids: Sequence[str], limit: int = 5) -> str:
    """The first `limit` of `ids`, and how many more: "a, b, c and 2 more"."""
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def one_line(text: str) -> str:
    """`text` on one line: line breaks become "; ", other control characters a space
    (an error may carry a program's whole stderr tail)."""
    text = _BREAKS.sub("; ", text.strip(_BREAK_CHARS))
    return _CONTROLS.sub(" ", text).rstrip()
