"""claim -> dump -> compress [-> encrypt] -> store -> finish: one backup, fenced by its lease."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from backupctl.artifacts import artifact_key, attempts_up_to
from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, Cancelled
from backupctl.heartbeat import Heartbeat
from backupctl.hooks import Hooks
from backupctl.kinds import KindOptions, kind_for
from backupctl.ledger import Claim, Ledger
from backupctl.logs import backup_extra
from backupctl.pipeline import dump_to_storage
from backupctl.redact import redact_text
from backupctl.registry.lookup import AppLookup
from backupctl.sizeguard import HISTORY, size_warning
from backupctl.storage import Storage, Storages

log = logging.getLogger(__name__)


def new_owner() -> str:
    """A lease owner id unique to this process: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. status: succeeded, failed, skipped, lost or released."""

    claim: Claim
    status: str
    seconds: float
    size: int | None = None
    sha256: str | None = None
    uri: str | None = None
    error: str | None = None


class Executor:
    """Runs claimed backups; the same code serves run-nightly, worker and backup APP."""

    def __init__(
        self,
        ledger: Ledger,
        storages: Storages,
        apps: AppLookup,
        heartbeat: Heartbeat,
        owner: str,
        timeout: float,
        retry_wait: float,
        kind_options: KindOptions | None = None,
        release_to: str = "pending",
        retry_wait_max: float = 600.0,
        gone_app: str = "skip",
        max_attempts: int = 1,
        min_size_ratio: float = 0.0,
    ) -> None:
        self._ledger = ledger
        self._storages = storages
        self._kind_options = kind_options or KindOptions()
        self._release_to = release_to  # a worker's released row still has its message
        # An app not (or no longer) in the registry when its claim runs: "skip" the
        # backup (the planner's view), or "release" it (a worker's, which may lag).
        self._gone_app = gone_app
        self._apps = apps
        self._heartbeat = heartbeat
        self._owner = owner
        self._timeout = timeout
        self._retry_wait = retry_wait
        self._retry_wait_max = retry_wait_max
        self._max_attempts = max_attempts  # a final failure (empty) uses up the round
        self._min_size_ratio = min_size_ratio  # the size guard; 0: off
        self._tokens: dict[tuple[int, int], CancelToken] = {}
        self._closing: str | None = None

    def cancel_all(self, reason: str) -> None:
        """Stop every backup in flight, and any that starts from now on."""
        self._closing = reason
        for token in list(self._tokens.values()):
            token.cancel(reason)

    def run(self, claim: Claim) -> Outcome:
        """Run one claimed attempt to its end and record it, unless the lease was lost."""
        started = time.monotonic()
        token = CancelToken(self._timeout)
        self._tokens[(claim.id, claim.attempt)] = token
        if self._closing is not None:  # claimed just as shutdown began
            token.cancel(self._closing)
        self._heartbeat.track(claim, token)
        try:
            return self._run(claim, token, started)
        finally:
            self._heartbeat.untrack(claim)
            self._tokens.pop((claim.id, claim.attempt), None)

    def _run(self, claim: Claim, token: CancelToken, started: float) -> Outcome:
        app = self._apps.get(claim.app_id)
        extra = backup_extra(claim.app_id, claim.id)
        if app is None:
            if self._gone_app == "release":
                self._ledger.release(claim, self._owner, self._release_to)
                return self._outcome(claim, "released", started, error="app not in registry")
            return self._skip(claim, started)
        log.info(
            "app %s backup %s: attempt %d started",
            claim.app_id,
            claim.id,
            claim.attempt,
            extra=extra,
        )
        secrets: list[str] = []
        hooks = Hooks(app)
        try:
            storage = self._storages.get(app.storage)
            options = dataclasses.replace(
                self._kind_options,
                hidden_env=self._kind_options.hidden_env | self._apps.secret_env(),
            )
            kind = kind_for(app, options)
            secrets = kind.secrets(app)
            recipients = app.recipients or ()
            key = artifact_key(claim, kind.extension, encrypted=bool(recipients))
            stored = hooks.around(
                token,
                options.hidden_env,
                lambda: dump_to_storage(kind, app, storage, key, token, recipients),
            )
        except Cancelled as exc:
            if token.reason.startswith("shutdown"):
                self._ledger.release(claim, self._owner, self._release_to)
                return self._outcome(claim, "released", started, error=str(exc))
            return self._fail(claim, started, str(exc), secrets, hooks.warning)
        except BackupFailed as exc:
            return self._fail(claim, started, str(exc), secrets, hooks.warning, final=exc.final)
        except Exception as exc:  # a bug or an unexpected I/O error: record it, go on
            log.error(
                "app %s backup %s: unexpected error",
                claim.app_id,
                claim.id,
                exc_info=True,
                extra=extra,
            )
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            return self._fail(claim, started, error, secrets, hooks.warning)

        uri = storage.uri(stored.key)
        warning = self._size_warning(claim, stored.size)
        hook_warning = redact_text(hooks.warning, secrets) if hooks.warning else None
        if not self._ledger.finish_succeeded(
            claim,
            self._owner,
            uri,
            stored.size,
            stored.sha256,
            written_by=stored.written_by,
            manifest=stored.manifest,
            warning=warning,
            hook_warning=hook_warning,
        ):
            # Fenced: another process owns this backup now (finish_succeeded has made
            # sure the row does not point here). Leave no second artifact.
            discard_safely(storage, claim, only=stored.key)
            log.warning(
                "app %s backup %s: lease was taken over; removed own artifact",
                claim.app_id,
                claim.id,
                extra=extra,
            )
            return self._outcome(claim, "lost", started, error="lease taken over")
        self._discard(claim, keep=stored.key)
        log.info(
            "app %s backup %s: succeeded, %d bytes",
            claim.app_id,
            claim.id,
            stored.size,
            extra=extra,
        )
        if warning is not None:
            log.warning(
                "app %s backup %s: smaller than usual: %s",
                claim.app_id,
                claim.id,
                warning,
                extra=extra,
            )
        return self._outcome(
            claim, "succeeded", started, size=stored.size, sha256=stored.sha256, uri=uri
        )

    def _size_warning(self, claim: Claim, size: int) -> str | None:
        """The size guard's warning for a nightly backup of `size` stored bytes."""
        if claim.trigger != "nightly" or self._min_size_ratio <= 0:
            return None
        previous = self._ledger.usual_sizes(claim.app_id, claim.run_date, HISTORY)
        return size_warning(size, previous, self._min_size_ratio)

    def _storage_for(self, claim: Claim) -> Storage:
        app = self._apps.get(claim.app_id)
        return self._storages.get(app.storage if app else None)

    def _skip(self, claim: Claim, started: float) -> Outcome:
        reason = "skipped: the app is no longer in the registry (or is disabled)"
        if not self._ledger.skip_claimed(claim, self._owner, reason):
            return self._outcome(claim, "lost", started, error="lease taken over")
        self._discard(claim)
        log.warning(
            "app %s backup %s: %s",
            claim.app_id,
            claim.id,
            reason,
            extra=backup_extra(claim.app_id, claim.id),
        )
        return self._outcome(claim, "skipped", started, error=reason)

    def _fail(
        self,
        claim: Claim,
        started: float,
        error: str,
        secrets: list[str],
        hook_warning: str | None = None,
        final: bool = False,
    ) -> Outcome:
        """Record a failed attempt; `final`: no retry this round (it would fail alike).
        `hook_warning`: what the app's `after` hook said when it failed too."""
        error = redact_text(error, secrets)
        if not self._ledger.finish_failed(
            claim,
            self._owner,
            error,
            self._retry_wait,
            self._retry_wait_max,
            final_after=self._max_attempts if final else None,
            hook_warning=redact_text(hook_warning, secrets) if hook_warning else None,
        ):
            log.warning(
                "app %s backup %s: lease was taken over",
                claim.app_id,
                claim.id,
                extra=backup_extra(claim.app_id, claim.id),
            )
            return self._outcome(claim, "lost", started, error="lease taken over")
        # Leftovers of this attempt or of an earlier one that died: never a backup.
        self._discard(claim)
        log.error(
            "app %s backup %s: failed: %s",
            claim.app_id,
            claim.id,
            error,
            extra=backup_extra(claim.app_id, claim.id),
        )
        return self._outcome(claim, "failed", started, error=error)

    def reap(self, dead: Iterable[Claim]) -> None:
        """Remove what the dead holders of `dead` (rows just reaped) left in storage."""
        for claim in dead:
            self._discard(claim)

    def _discard(self, claim: Claim, keep: str | None = None) -> None:
        try:
            storage = self._storage_for(claim)
        except Exception as exc:  # a storage that can't open: `verify --orphans` finds them
            log.warning("app %s backup %s: %s", claim.app_id, claim.id, redact_text(str(exc)))
            return
        discard_safely(storage, claim, keep=keep)

    @staticmethod
    def _outcome(claim: Claim, status: str, started: float, **fields: object) -> Outcome:
        return Outcome(claim, status, time.monotonic() - started, **fields)  # type: ignore[arg-type]


def discard_safely(
    storage: Storage, claim: Claim, keep: str | None = None, only: str | None = None
) -> None:
    """Remove what this attempt and earlier ones left in storage, except `keep` (or
    just `only`). A storage error is logged: `verify --orphans` finds what stays."""
    try:
        if only is not None:
            storage.delete(only)
        else:
            for prefix in attempts_up_to(claim):
                storage.discard_attempts(prefix, keep=keep)
    except Exception as exc:  # storage down: the next finish of this backup retries
        log.warning(
            "app %s backup %s: could not remove leftovers: %s",
            claim.app_id,
            claim.id,
            redact_text(str(exc)),
            extra=backup_extra(claim.app_id, claim.id),
        )
