"""Measuring the benchmarks' child processes: exit code and CPU time (wait4), and peak
RSS (VmHWM) sampled from /proc.

Shared by ``bench/backup.py`` and ``bench/drill.py``; ``bench/backup.py``'s docstring says
why VmHWM and not ``ru_maxrss``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from types import FrameType

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


def kib_to_mb(kib: int) -> float:
    """KiB (as /proc reports VmHWM) to MB (10^6 bytes)."""
    return kib * 1024 / MB


def rss_text(rss: dict[str, float]) -> str:
    """Peak RSS per process, as `name N MB, ...`."""
    return ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items())


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: stop the benchmark as Ctrl-C does, cleaning up on the way."""
    raise KeyboardInterrupt


def run_against_zstd(
    script: str, pipeline: str, tool: str, run: Callable[[contextlib.ExitStack, str, str], float]
) -> int:
    """A zstd-pipeline benchmark's main: find the zstd program and the embedded
    Postgres's tools (`tool` is the one it needs, named when missing), then
    `run(stack, zstd, bin_dir)` inside an ExitStack that stops everything it started,
    also on SIGTERM or ^C, and print its `ratio=R`. Returns the exit status."""
    import shutil
    import signal
    import sys

    from backupctl.kinds.postgres import embedded_bin_dir

    zstd = shutil.which("zstd")
    if zstd is None:
        print(
            f"{script}: the zstd program is not installed (not on PATH); the raw"
            f" pipeline `{pipeline}` needs it. Install it (Debian/Ubuntu:"
            " `apt-get install zstd`) and run again.",
            file=sys.stderr,
        )
        return 2
    bin_dir = embedded_bin_dir()
    if bin_dir is None:
        print(f"{script}: pgserver's {tool} not found: pip install pgserver", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with contextlib.ExitStack() as stack:
            ratio = run(stack, zstd, str(bin_dir))
    except KeyboardInterrupt:
        print(f"{script}: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    print(f"ratio={ratio:.2f}")
    return 0
