"""The cancel token: timeouts, explicit cancels and the lease deadline."""

from __future__ import annotations

import time

import pytest

from backupctl.cancel import CancelToken
from backupctl.errors import Cancelled


def test_a_lease_not_renewed_in_time_stops_the_backup() -> None:
    token = CancelToken(timeout=60)
    token.hold_lease_until(time.monotonic() + 0.05)
    assert not token.cancelled
    time.sleep(0.08)
    with pytest.raises(Cancelled, match="lease not renewed in time"):
        token.check()


def test_a_renewal_moves_the_lease_deadline_forward() -> None:
    token = CancelToken()
    token.hold_lease_until(time.monotonic() + 0.05)
    token.hold_lease_until(time.monotonic() + 60)
    time.sleep(0.08)
    assert not token.cancelled


def test_the_first_reason_wins() -> None:
    token = CancelToken()
    token.cancel("shutdown: SIGTERM")
    token.cancel("lease lost")
    assert token.reason == "shutdown: SIGTERM"
