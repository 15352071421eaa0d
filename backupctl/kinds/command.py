"""Kind `command`: run an argv list; its stdout is the artifact."""

from __future__ import annotations

from backupctl.cancel import CancelToken
from backupctl.kinds import Writer
from backupctl.kinds.process import stream_stdout
from backupctl.registry.model import App


class CommandKind:
    extension = "out"

    def dump(self, app: App, out: Writer, cancel: CancelToken) -> None:
        """Run the app's argv and copy its stdout to `out`."""
        stream_stdout(app.params["argv"], out, cancel, label="command")

    def secrets(self, app: App) -> list[str]:
        return []
