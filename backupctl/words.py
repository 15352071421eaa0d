"""Wording shared by the commands' output."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun in the right number: "1 app", "2 apps", "0 apps"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
