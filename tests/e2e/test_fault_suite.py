"""The fault-injection suite, short: a few randomized rounds as part of the tests."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


# Two rounds take about a minute; a loaded machine may need several.
@pytest.mark.timeout(420)
def test_a_few_rounds_of_the_fault_suite_lose_double_and_orphan_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "faults.py"), "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=REPO,
    )
    output = result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"rounds=2 faults=\d+ lost=0 doubled=0 orphaned=0", last), output
    assert result.returncode == 0, output
