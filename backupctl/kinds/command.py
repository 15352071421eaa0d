"""Kind `command`: run an argv list; its stdout is the artifact. Restored to a new file
(or standard output); drilled by the app's `drill_argv` program, if it has one.

Manifest: only the uncompressed size, which every kind records."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds import Counting, DumpResult, KindOptions, Writer, child_environment
from backupctl.kinds.fields import KindSpec, argv
from backupctl.kinds.preflight import field_problems
from backupctl.kinds.process import stream_stdout
from backupctl.redact import redact_text

if TYPE_CHECKING:
    from backupctl.drill import DrillTargets
    from backupctl.manifest import Manifest
    from backupctl.registry.model import App
    from backupctl.restore import RestoreRequest, Source

STDERR_TAIL = 2000


class CommandKind:
    extension = "out"
    one_pass = False  # also written to standard output: verified first
    # drill_argv: a program `backupctl drill` runs with the restored output as its stdin.
    fields = KindSpec({"argv": argv, "drill_argv": argv}, frozenset({"argv"}))

    def __init__(self, options: KindOptions | None = None) -> None:
        self._options = options or KindOptions()

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Run the app's argv and copy its stdout to `out`."""
        env = child_environment(self._options.hidden_env)
        counted = Counting(out)
        stream_stdout(app.params["argv"], counted, cancel, env=env, label="command")
        return DumpResult(empty=None if counted.count else "the command wrote no output")

    def secrets(self, app: App) -> list[str]:
        return []

    def preflight(self, app: App) -> list[str]:
        """Why a backup would fail now: a program (argv, any *_argv) that can't start."""
        return field_problems(app)

    def restore(self, source: Source, target: str, request: RestoreRequest) -> str:
        """The output, to a new file `target` (never an existing one), or to standard
        output for "-"."""
        from backupctl.kinds.tofile import restore_to_file, restore_to_stdout

        if target == "-":
            return restore_to_stdout(source)
        return restore_to_file(source, Path(target))

    def drill(
        self,
        source: Source,
        app: App,
        manifest: Manifest | None,
        targets: DrillTargets,
        restored: dict[str, Any],
    ) -> None:
        """Decompress into a temporary file, whose bytes must be the manifest's, and
        pipe it into the app's drill_argv program when it has one."""
        from backupctl.drill import SCRATCH_PREFIX, DrillMismatch, note_no_manifest
        from backupctl.restore import RestoreRequest

        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        try:
            output = scratch / "restored"
            self.restore(source, str(output), RestoreRequest())
            restored["bytes"] = output.stat().st_size
            drill_argv = app.params.get("drill_argv")
            if drill_argv:
                _run_drill_argv(list(drill_argv), output, targets.timeout)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if manifest is None:
            note_no_manifest(restored, "bytes")
            return
        if restored["bytes"] != manifest.uncompressed_bytes:
            raise DrillMismatch(
                f"restored {restored['bytes']} bytes, "
                f"the backup recorded {manifest.uncompressed_bytes}"
            )


def _run_drill_argv(argv: list[str], restored: Path, timeout: float) -> None:
    """Run the app's drill program with the restored output as its stdin (no shell)."""
    with restored.open("rb") as stdin, tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.run(
                argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise BackupFailed(f"drill_argv {argv[0]} ran longer than {timeout:g}s") from None
        except OSError as exc:
            raise BackupFailed(f"drill_argv {argv[0]} cannot start: {exc.strerror}") from None
        if proc.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace").strip()[-STDERR_TAIL:]
            lines = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
            raise BackupFailed(
                f"drill_argv {argv[0]} exited with status {proc.returncode}"
                + (f": {redact_text(lines)}" if lines else "")
            )
