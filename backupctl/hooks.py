"""An app's hooks: its `before` program runs before the dump, its `after` program
always afterwards, with BACKUPCTL_BACKUP_STATUS=succeeded|failed in its environment.

Both are argv lists (never a shell), run in a session of their own and killed with
their process group on a timeout or cancel, like a command app; their stdout is
ignored, their stderr's tail is what a failure says. They get the environment a
backup's program gets (backupctl.kinds.child_environment: no BACKUPCTL_* setting, no
app's secret variable), and count towards the backup's timeout.

- `before` exiting non-zero (or not starting, or timing out) fails the backup with
  its stderr tail, and the dump does not run.
- `after` runs once `before` ran (or the dump started), whatever came of it: also
  when `before` failed (with status failed, so it can undo a partial quiesce), and
  after a timeout or cancel. It gets what is left of the backup's timeout, but at
  least AFTER_GRACE, since it must be able to undo what `before` did.
- A failing `after` never changes the backup's status: the failure is logged and
  recorded with the backup (its `hook_warning`), and `check` warns about it.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Sequence
from typing import TypeVar

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, Cancelled
from backupctl.kinds import child_environment
from backupctl.kinds.process import stream_stdout
from backupctl.registry.model import App

log = logging.getLogger(__name__)

T = TypeVar("T")
STATUS_VARIABLE = "BACKUPCTL_BACKUP_STATUS"
AFTER_GRACE = 60.0  # seconds `after` gets at least, even past the backup's timeout


class _Ignored:
    """A hook's stdout: read (so the program never blocks on a full pipe), dropped."""

    def write(self, data: bytes, /) -> int:
        return len(data)


class Hooks:
    """The hooks of one backup of `app`; `warning` is set when `after` failed."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._hidden_env: frozenset[str] = frozenset()
        self.warning: str | None = None

    def around(self, cancel: CancelToken, hidden_env: frozenset[str], body: Callable[[], T]) -> T:
        """Run `before`, then `body` (the dump) unless `before` failed, then `after`;
        return what `body` returned, or raise what failed (`before`'s or `body`'s
        error; never `after`'s, which only sets `warning`). `hidden_env`: every
        app's secret variable, which the hooks must not see."""
        app = self._app
        self._hidden_env = hidden_env
        if app.before is None and app.after is None:
            return body()
        status = "failed"
        try:
            if app.before is not None:
                self._run("before", app.before, cancel, {})
            result = body()
            status = "succeeded"
            return result
        finally:
            if app.after is not None:
                self.warning = self._after(app.after, status, cancel)

    def _after(self, argv: Sequence[str], status: str, cancel: CancelToken) -> str | None:
        left = cancel.remaining()
        token = CancelToken(None if left is None else max(left, AFTER_GRACE))
        try:
            self._run("after", argv, token, {STATUS_VARIABLE: status})
        except BackupFailed as exc:
            log.warning("app %s: %s (the backup %s)", self._app.id, exc, status)
            return str(exc)
        return None

    def _run(
        self, name: str, argv: Sequence[str], cancel: CancelToken, extra: dict[str, str]
    ) -> None:
        env = {**child_environment(self._hidden_env), **extra}
        log.debug("app %s: %s hook: running %s", self._app.id, name, shlex.join(argv))
        try:
            stream_stdout(argv, _Ignored(), cancel, env=env, label=f"{name} hook")
        except Cancelled as exc:
            raise Cancelled(f"{name} hook: {exc}") from None
        except OSError as exc:  # e.g. a script without its #! line
            raise BackupFailed(f"{name} hook: cannot run {argv[0]}: {exc.strerror}") from None
