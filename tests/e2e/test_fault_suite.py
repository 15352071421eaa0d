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
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "faults.py"), "--rounds", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        stdout, stderr = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        proc.terminate()  # it stops the Postgres and moto it started, then exits
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail("the fault suite took longer than 400 s:\n" + stdout + stderr)
    output = stdout + stderr
    last = stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"rounds=2 faults=\d+ lost=0 doubled=0 orphaned=0", last), output
    assert proc.returncode == 0, output
