"""A stop request shared by a long-running command and its signal handlers."""

from __future__ import annotations

import threading


class Stop:
    """`event` is set on the first SIGTERM/SIGINT: take no new work, wind down.
    `hard` is set on the second: stop now."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.hard = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        self.reason = reason
        self.event.set()
