"""Kind `command`: run an argv list; its stdout is the artifact."""

from __future__ import annotations

from backupctl.cancel import CancelToken
from backupctl.kinds import Counting, DumpResult, Writer, child_environment
from backupctl.kinds.preflight import field_problems
from backupctl.kinds.process import stream_stdout
from backupctl.registry.model import App


class CommandKind:
    extension = "out"

    def __init__(self, hidden_env: frozenset[str] = frozenset()) -> None:
        self._hidden_env = hidden_env

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> DumpResult:
        """Run the app's argv and copy its stdout to `out`."""
        env = child_environment(self._hidden_env)
        counted = Counting(out)
        stream_stdout(app.params["argv"], counted, cancel, env=env, label="command")
        return DumpResult(empty=None if counted.count else "the command wrote no output")

    def secrets(self, app: App) -> list[str]:
        return []

    def preflight(self, app: App) -> list[str]:
        """Why a backup would fail now: a program (argv, any *_argv) that can't start."""
        return field_problems(app)
