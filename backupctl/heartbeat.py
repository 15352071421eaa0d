"""One thread renews every lease this process holds and cancels the ones it lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from backupctl.cancel import CancelToken
from backupctl.errors import LedgerUnavailable
from backupctl.ledger import Claim, Ledger
from backupctl.logs import backup_extra

log = logging.getLogger(__name__)


def _nothing() -> None:
    pass


# Of a lease, the part after a renewal was sent during which a backup may go on
# without hearing back; the rest is margin for clocks and the final publish.
SAFE_SHARE = 0.75


class Heartbeat:
    """Renews leases every lease/3 seconds; a lease not renewed means stop that backup."""

    def __init__(self, ledger: Ledger, owner: str, lease: float) -> None:
        self._shared = ledger
        self._ledger = ledger
        self._owner = owner
        self._lease = lease
        # (id, attempt) -> the claim, its token, and what to do after each renewal
        self._held: dict[tuple[int, int], tuple[Claim, CancelToken, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        # Its own connection: a statement waiting on a row lock (or a slow finish) on the
        # shared one must never delay a renewal.
        self._ledger = self._shared.another()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._ledger.close()

    def track(
        self, claim: Claim, token: CancelToken, on_renew: Callable[[], None] | None = None
    ) -> None:
        """Renew `claim`'s lease until untracked; call `on_renew` after each renewal
        (a worker extends its message's visibility there)."""
        # Claimed moments ago for a whole lease; the first renewal comes within a third.
        token.hold_lease_until(time.monotonic() + self._lease * SAFE_SHARE)
        with self._lock:
            self._held[(claim.id, claim.attempt)] = (claim, token, on_renew or _nothing)

    def untrack(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop((claim.id, claim.attempt), None)

    def beat(self) -> None:
        """Renew now; cancel every backup whose lease another process took over."""
        with self._lock:
            held = dict(self._held)
        if not held:
            return
        sent = time.monotonic()
        try:
            kept = self._ledger.heartbeat(self._owner, [i for i, _ in held], self._lease)
        except LedgerUnavailable as exc:
            # Each backup stops by itself when its last renewal runs out (see track).
            log.warning("cannot renew leases: %s", exc)
            return
        for key, (claim, token, on_renew) in held.items():
            if key in kept:
                token.hold_lease_until(sent + self._lease * SAFE_SHARE)
                self._renewed(claim, on_renew)
            else:
                log.warning(
                    "app %s backup %s: lease taken over by another process; stopping",
                    claim.app_id,
                    claim.id,
                    extra=backup_extra(claim.app_id, claim.id),
                )
                token.cancel("lease lost: another process took this backup over")

    def _renewed(self, claim: Claim, on_renew: Callable[[], None]) -> None:
        try:
            on_renew()
        except Exception as exc:  # the lease, not the message, is what protects the row
            log.warning(
                "app %s backup %s: %s",
                claim.app_id,
                claim.id,
                exc,
                extra=backup_extra(claim.app_id, claim.id),
            )

    def _loop(self) -> None:
        interval = max(0.2, self._lease / 3)
        while not self._stop.wait(interval):
            self.beat()
