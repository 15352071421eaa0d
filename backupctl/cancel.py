"""A cancellation token shared by a backup and whoever may need to stop it."""

from __future__ import annotations

import threading
import time

from backupctl.errors import Cancelled


class CancelToken:
    """Set by the heartbeat (lease lost), the deadline (timeout) or shutdown."""

    def __init__(self, timeout: float | None = None) -> None:
        self._event = threading.Event()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._timeout = timeout
        self._lease_until: float | None = None
        self.reason = ""

    def hold_lease_until(self, moment: float) -> None:
        """The lease is safely ours until `moment` (time.monotonic()); past it, stop.
        The heartbeat moves it forward after each renewal, so a hung or unreachable
        database stops the backup before another process may take it over."""
        self._lease_until = moment

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._event.is_set():
            if self._deadline is not None and now >= self._deadline:
                self.cancel(f"timed out after {self._timeout:g}s")
            elif self._lease_until is not None and now >= self._lease_until:
                self.cancel("lease not renewed in time (ledger unreachable?): stopped")
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if the backup must stop."""
        if self.cancelled:
            raise Cancelled(self.reason)

    def remaining(self) -> float | None:
        """Seconds left until the deadline (0 once past it); None without a timeout."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds` (never past the deadline); return True once cancelled."""
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
        self._event.wait(seconds)
        return self.cancelled
