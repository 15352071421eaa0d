"""Measuring the benchmarks' child processes: exit code and CPU time (wait4), and peak
RSS (VmHWM) sampled from /proc.

Shared by ``bench/backup.py``, ``bench/drill.py`` and ``bench/restore.py``;
``bench/backup.py``'s docstring says why VmHWM and not ``ru_maxrss``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO, Protocol

MB = 1_000_000
GB = 1_000_000_000


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill `proc` unless it has been reaped, and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(ChildProcessError):
            proc.wait(timeout=10)


def reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for `proc` (wait4): its exit code and the CPU seconds (user + system) used by
    it and by the children it reaped."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


SAMPLE_SECONDS = 0.01
SCAN_SECONDS = 0.1


def hwm_kib(pid: int) -> int | None:
    """The peak RSS of a live process (VmHWM), in KiB; None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def comm_and_ppid(pid: int | str) -> tuple[str, int] | None:
    """A live process's program name and parent pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # pid (comm) state ppid ...; comm may contain spaces and parentheses.
    comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
    return comm, int(stat[stat.rindex(b")") + 2 :].split()[1])


def children_of(parents: set[int]) -> dict[int, str]:
    """Live processes whose parent is in `parents` and that run a program of their own
    (a child between fork and exec still shares its parent's memory and name)."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        child = comm_and_ppid(entry)
        if child is None or child[1] not in parents:
            continue
        parent = comm_and_ppid(child[1])
        if parent is not None and parent[0] != child[0]:
            found[int(entry)] = child[0]
    return found


class PeakSampler:
    """Samples the VmHWM of some processes and of their descendants until stopped."""

    def __init__(self, roots: dict[int, str]) -> None:
        self._names = dict(roots)  # pid -> label
        self.peaks_kib: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        next_scan = 0.0
        while True:
            now = time.monotonic()
            if now >= next_scan:
                for pid, comm in children_of(set(self._names)).items():
                    self._names.setdefault(pid, comm)
                next_scan = now + SCAN_SECONDS
            for pid, name in list(self._names.items()):
                kib = hwm_kib(pid)
                if kib is not None and kib > self.peaks_kib.get(name, 0):
                    self.peaks_kib[name] = kib
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def peaks_mb(self) -> dict[str, float]:
        """The peaks seen so far, by label, in MB."""
        return {name: kib_to_mb(kib) for name, kib in self.peaks_kib.items()}


@dataclass(frozen=True)
class Piped:
    """Two processes joined by a pipe, run to their end."""

    codes: tuple[int, int]  # exit codes, first and second
    cpu_seconds: float  # user + system of both (and of the children they reaped)
    seconds: float  # from the caller's start to the exit of the later one
    rss: dict[str, float]  # label -> peak RSS in MB


def run_piped(
    started: float,
    first: Callable[[], subprocess.Popen[bytes]],
    second: Callable[[IO[bytes]], subprocess.Popen[bytes]],
    labels: tuple[str, str],
) -> Piped:
    """Start `first()` (its stdout a pipe), then `second(that pipe)` reading it; sample
    the peak RSS of both (and of their children) until both exit, reap them, and kill
    whichever is left on an error or Ctrl-C. `started`: the perf_counter the time
    counts from."""
    one = first()
    try:
        assert one.stdout is not None
        two = second(one.stdout)
    except BaseException:
        kill(one)
        raise
    one.stdout.close()
    try:
        with PeakSampler({one.pid: labels[0], two.pid: labels[1]}) as sampler:
            one_code, one_cpu = reap(one)
            two_code, two_cpu = reap(two)
        seconds = time.perf_counter() - started
    finally:
        kill(one)
        kill(two)
    rss = {label: sampler.peaks_mb().get(label, 0.0) for label in labels}
    return Piped((one_code, two_code), one_cpu + two_cpu, seconds, rss)


def kib_to_mb(kib: int) -> float:
    """KiB (as /proc reports VmHWM) to MB (10^6 bytes)."""
    return kib * 1024 / MB


class MeasuredRun(Protocol):
    """A measured run of a variant: its wall time and the peak RSS of its processes."""

    seconds: float
    rss: dict[str, float]  # process -> peak RSS in MB


def peak_rss(runs: Iterable[MeasuredRun]) -> dict[str, float]:
    """The highest peak RSS of each process over `runs`, in MB."""
    peaks: dict[str, float] = {}
    for run in runs:
        for name, mb in run.rss.items():
            peaks[name] = max(peaks.get(name, 0.0), mb)
    return peaks


def rss_text(rss: dict[str, float]) -> str:
    """Peak RSS per process, as `name N MB, ...`."""
    return ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items())


def throughput_text(label: str, width: int, db_bytes: int, runs: Sequence[MeasuredRun]) -> str:
    """`label` padded to `width`, the database size, the median wall time of `runs`, the
    throughput that gives and the peak RSS of each process."""
    seconds = statistics.median(run.seconds for run in runs)
    return (
        f"{label:<{width}}{db_bytes / GB:.2f} GB in {seconds:.2f}s"
        f" = {db_bytes / MB / seconds:.1f} MB/s  peak RSS {rss_text(peak_rss(runs))}"
    )


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: stop the benchmark as Ctrl-C does, cleaning up on the way."""
    raise KeyboardInterrupt
