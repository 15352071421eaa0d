"""A stop request shared by a long-running command and its signal handlers."""

from __future__ import annotations

import threading


class Stop:
    """Set on the first SIGTERM/SIGINT: take no new work, wind down."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        self.reason = reason
        self.event.set()
