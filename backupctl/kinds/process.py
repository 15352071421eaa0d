"""Run a program (argv, never a shell) and stream its stdout, killable on cancel."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, Cancelled
from backupctl.kinds import Writer

CHUNK = 1 << 20
STDERR_TAIL = 2000


def stream_stdout(
    argv: Sequence[str],
    out: Writer,
    cancel: CancelToken,
    env: Mapping[str, str] | None = None,
    label: str | None = None,
    pass_fds: Sequence[int] = (),
) -> None:
    """Run `argv`, copy its stdout to `out`; fail with its stderr tail if it exits non-zero.
    `pass_fds`: descriptors the program inherits (e.g. an option file it opens)."""
    label = label or os.path.basename(argv[0])
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # so a kill reaches the program's own children
            pipesize=CHUNK,  # the program writes on while we compress the last chunk
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError:
        raise BackupFailed(f"{label}: program not found: {argv[0]}") from None
    except PermissionError:
        raise BackupFailed(f"{label}: program not executable: {argv[0]}") from None

    tail: collections.deque[bytes] = collections.deque(maxlen=64)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = proc.stderr
    reader = threading.Thread(target=lambda: tail.extend(iter(stderr.readline, b"")), daemon=True)
    reader.start()
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if cancel.wait(0.2):
                _kill(proc)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        while chunk := proc.stdout.read(CHUNK):
            out.write(chunk)
    except BaseException:
        _kill(proc)
        raise
    finally:
        code = proc.wait()
        finished.set()
        reader.join(timeout=5)
        proc.stdout.close()
        stderr.close()
    cancel.check()
    if code != 0:
        text = b"".join(tail).decode("utf-8", "replace").strip()[-STDERR_TAIL:]
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise BackupFailed(f"{label} {how}" + (f": {text}" if text else ""))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


__all__ = ["Cancelled", "stream_stdout"]
