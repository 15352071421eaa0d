"""Counted nouns in what backupctl prints: "1 app", "2 apps", "0 backups"."""

from __future__ import annotations

# Nouns whose plural is not noun + "s".
_IRREGULAR = {"was": "were", "is": "are", "has": "have"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural unless `count` is exactly one."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {many or _IRREGULAR.get(noun) or noun + 's'}"
