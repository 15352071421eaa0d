"""Benchmark start-up: how long the console script takes to answer before doing any work.

What it measures, each as the wall time of a whole process (fork/exec, interpreter start,
``site`` with the editable install's finder, imports, parsing, output, exit), in ms:

- raw:       ``python -c "import click"`` with the venv's interpreter: the floor for any
             click program started from this venv;
- ``backupctl --help``, ``backupctl --version``;
- ``backupctl nosuchcommand`` and ``backupctl run-nightly --bogus``: the one-line usage
  errors, which must exit 2.

``backupctl`` is the venv's console script (``.venv/bin/backupctl``, next to the
interpreter running this script), as cron and operators start it. Every exit code is
checked. After ``--warm-up`` rounds (page cache and ``.pyc`` files warm), ``--runs`` rounds
each start every case once, in an order that rotates from round to round so that a slow
moment of the machine does not land on one case only; the median of each case is
reported with its ratio to the raw median. Each case's CPU time (user + system, from
``wait4``) is printed next to it: it hardly moves when other work loads the machine, so
it shows whether a change of the wall-time ratio is real.

``backupctl run-nightly --help`` is measured too, for information: a subcommand's help
imports that command's module, so it is allowed to be slower and is not in the ratio.

The last line is ``ratio=R``: the worst ratio of the four cases to the raw baseline.
Target: R <= 1.5.

Run it with ``.venv/bin/python bench/startup.py``; options ``--runs N`` (default 60) and
``--warm-up K`` (default 3). It needs no database and changes nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MAX_RATIO = 1.5


@dataclass
class Case:
    """One command line to time, the exit code it must end with, and its samples (s)."""

    label: str
    argv: list[str]
    exit_code: int
    in_ratio: bool = True
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def median_cpu_ms(self) -> float:
        return statistics.median(self.cpu_seconds) * 1000


def cases(python: str, backupctl: str) -> list[Case]:
    """The raw baseline first, then the backupctl command lines."""
    return [
        Case('python -c "import click"', [python, "-c", "import click"], 0),
        Case("backupctl --help", [backupctl, "--help"], 0),
        Case("backupctl --version", [backupctl, "--version"], 0),
        Case("backupctl nosuchcommand", [backupctl, "nosuchcommand"], 2),
        Case("backupctl run-nightly --bogus", [backupctl, "run-nightly", "--bogus"], 2),
        Case("backupctl run-nightly --help", [backupctl, "run-nightly", "--help"], 0, False),
    ]


def time_once(case: Case, env: dict[str, str], sink: IO[bytes]) -> tuple[float, float]:
    """Start the command once; return its wall time and its CPU time (user + system),
    after checking its exit code."""
    began = time.perf_counter()
    proc = subprocess.Popen(case.argv, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    _, status, usage = os.wait4(proc.pid, 0)  # wait4: the rusage of this child alone
    elapsed = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != case.exit_code:
        raise SystemExit(
            f"bench/startup.py: {case.label} exited {proc.returncode}, not {case.exit_code}"
        )
    return elapsed, usage.ru_utime + usage.ru_stime


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=60, help="measured rounds (60)")
    parser.add_argument("--warm-up", type=int, default=3, help="unmeasured rounds first (3)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 1000 or not 0 <= args.warm_up <= 100:
        parser.error("--runs must be from 1 to 1000, --warm-up from 0 to 100")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backupctl = Path(sys.executable).with_name("backupctl")
    if not backupctl.is_file():
        print(f"bench/startup.py: no console script at {backupctl}", file=sys.stderr)
        return 2
    # A fixed width and no colour: every run formats the same help text.
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    # Imports must come from .pyc files, as they do once the tool has run once.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    all_cases = cases(sys.executable, str(backupctl))
    # Output goes to a temporary file: no pipe to drain, nothing for this process to read.
    with tempfile.TemporaryFile() as sink:
        for n in range(args.warm_up + args.runs):
            shift = n % len(all_cases)
            for case in all_cases[shift:] + all_cases[:shift]:
                wall, cpu = time_once(case, env, sink)
                if n >= args.warm_up:
                    case.seconds.append(wall)
                    case.cpu_seconds.append(cpu)

    raw, *ours = all_cases
    print(
        f"{args.runs} runs each after {args.warm_up} warm-up rounds, medians;"
        f" {os.cpu_count()} cores"
    )
    width = max(len(c.label) for c in all_cases)
    print(
        f"{raw.label:<{width}}  {raw.median_ms:6.1f} ms  (raw baseline; "
        f"CPU {raw.median_cpu_ms:.1f} ms)"
    )
    for case in ours:
        note = "" if case.in_ratio else "  (for information: imports its module)"
        ratio = case.median_ms / raw.median_ms
        cpu_ratio = case.median_cpu_ms / raw.median_cpu_ms
        print(
            f"{case.label:<{width}}  {case.median_ms:6.1f} ms  ratio {ratio:.2f}  "
            f"(CPU {case.median_cpu_ms:.1f} ms, ratio {cpu_ratio:.2f}){note}"
        )
    worst = max(c.median_ms for c in ours if c.in_ratio) / raw.median_ms
    print(f"load average now {os.getloadavg()[0]:.1f} (other work on the machine skews the times)")
    verdict = "ok" if worst <= MAX_RATIO else "MISSED"
    print(f"target: every ratio <= {MAX_RATIO} (run-nightly --help excluded): {verdict}")
    print(f"ratio={worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
