"""One thread renews every lease this process holds and cancels the ones it lost."""

from __future__ import annotations

import logging
import threading
import time

from backupctl.cancel import CancelToken
from backupctl.errors import LedgerUnavailable
from backupctl.ledger import Claim, Ledger
from backupctl.logs import backup_extra

log = logging.getLogger(__name__)

# Of a lease, the part after a renewal was sent during which a backup may go on
# without hearing back; the rest is margin for clocks and the final publish.
SAFE_SHARE = 0.75
# Renewals per lease. Six leave a backup SAFE_SHARE - 1/6 of a lease (about 58%) of
# ledger outage to ride out however the outage falls between two renewals.
BEATS_PER_LEASE = 6
# After a failed renewal, the next try comes this soon (a restart is usually short).
RETRY_SHARE = 1 / 30


class Heartbeat:
    """Renews leases at a fixed rate; a lease not renewed in time means stop that backup."""

    def __init__(self, ledger: Ledger, owner: str, lease: float) -> None:
        self._shared = ledger
        self._ledger = ledger
        self._owner = owner
        self._lease = lease
        self.interval = max(0.2, lease / BEATS_PER_LEASE)
        # (id, attempt) -> the claim and its token
        self._held: dict[tuple[int, int], tuple[Claim, CancelToken]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failing = False  # the last renewal failed: say so once, not every try
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        # Its own connection: a statement waiting on a row lock (or a slow finish) on the
        # shared pool must never delay a renewal. No retries inside a renewal: the loop
        # tries again soon, and each try is bounded well inside the lease.
        self._ledger = self._shared.another(outage=0.0, io_timeout=max(2.0, self.interval))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._ledger.close()

    def track(self, claim: Claim, token: CancelToken) -> None:
        """Renew `claim`'s lease until untracked."""
        # Claimed for a whole lease, usually moments ago; a claim found again after a
        # lost answer has less left. The first renewal comes well within it.
        margin = self._lease * (1 - SAFE_SHARE)
        left = self._lease if claim.lease_left is None else claim.lease_left
        token.hold_lease_until(time.monotonic() + max(0.0, left - margin))
        with self._lock:
            self._held[(claim.id, claim.attempt)] = (claim, token)

    def untrack(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop((claim.id, claim.attempt), None)

    def beat(self) -> bool:
        """Renew now; cancel every backup whose lease another process took over.
        False when the ledger could not be reached."""
        with self._lock:
            held = dict(self._held)
        if not held:
            return True
        sent = time.monotonic()
        try:
            kept = self._ledger.heartbeat(self._owner, [i for i, _ in held], self._lease)
        except LedgerUnavailable as exc:
            # Each backup stops by itself when its last renewal runs out (see track).
            log.log(
                logging.DEBUG if self._failing else logging.WARNING,
                "cannot renew leases: %s",
                exc,
            )
            self._failing = True
            return False
        if self._failing:
            log.warning("leases renewed again")
            self._failing = False
        for key, (claim, token) in held.items():
            if key in kept:
                token.hold_lease_until(sent + self._lease * SAFE_SHARE)
            else:
                log.warning(
                    "app %s backup %s: lease taken over by another process; stopping",
                    claim.app_id,
                    claim.id,
                    extra=backup_extra(claim.app_id, claim.id),
                )
                token.cancel("lease lost: another process took this backup over")
        return True

    def _loop(self) -> None:
        # Fixed rate: the next renewal is due one interval after the last was due, not
        # after it returned, so a slow renewal never pushes the others back.
        due = time.monotonic() + self.interval
        retry = max(0.2, self._lease * RETRY_SHARE)
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            ok = self.beat()
            now = time.monotonic()
            if not ok:
                due = now + min(retry, self.interval)
                continue
            due += self.interval
            if due <= now:  # fell behind (a stalled process): start the rhythm again
                due = now + self.interval
