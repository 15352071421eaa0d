"""System tools a test needs: missing on a developer's machine, the test skips with
one line saying what to install; missing under CI (CI=true), the test fails."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """True when the suite runs under CI, where a missing tool is a failure."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, install: str) -> None:
    """Skip (or, under CI, fail) the calling test: `what` is missing, `install` fixes it."""
    message = f"{what} is missing: install {install}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def need_tool(name: str, install: str) -> str:
    """The path of program `name`, or skip/fail naming `install` (e.g. 'apt-get install X')."""
    path = shutil.which(name)
    if path is None:
        missing(f"the program {name!r}", install)
        raise AssertionError("unreachable")  # pytest.skip/fail raise
    return path
