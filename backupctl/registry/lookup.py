"""Looking apps up by id: a fixed set for one run, or a worker's registry that follows
its source as it changes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from backupctl.errors import RegistryError, RegistryUnavailable
from backupctl.registry.guard import no_apps_problem, shrink_problem
from backupctl.registry.model import App

log = logging.getLogger(__name__)

# A worker looks at its registry file at most this often...
STAT_EVERY = 1.0
# ...and reloads a source it cannot stat (an API, a database) at most this often.
RELOAD_EVERY = 30.0


class AppLookup(Protocol):
    def get(self, app_id: str, /) -> App | None:
        """The enabled app with this id, or None."""

    def secret_env(self) -> frozenset[str]:
        """Environment variables that hold some app's secret (its dsn_env)."""


def _secret_env(apps: Iterable[App]) -> frozenset[str]:
    return frozenset(str(app.params["dsn_env"]) for app in apps if "dsn_env" in app.params)


class StaticApps:
    """The enabled apps of a registry as loaded once (all of them with
    `enabled_only=False`: an ad-hoc backup may be of a disabled app)."""

    def __init__(self, apps: Sequence[App], *, enabled_only: bool = True) -> None:
        self._apps = {app.id: app for app in apps if app.enabled or not enabled_only}
        self._secret_env = _secret_env(apps)

    def get(self, app_id: str, /) -> App | None:
        return self._apps.get(app_id)

    def secret_env(self) -> frozenset[str]:
        return self._secret_env

    def ids(self) -> list[str]:
        return sorted(self._apps)


def file_stamp(path: str) -> Callable[[], object]:
    """What changes when the file at `path` is replaced or edited."""

    def stamp() -> object:
        try:
            st = os.stat(path)
        except OSError as exc:
            return ("missing", exc.errno)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    return stamp


class LiveRegistry:
    """A worker's registry: reloaded when its source changed, and when a message names
    an app it does not know (the app may have been added after the worker started).

    A reload that fails (a file caught mid-edit, an API that is down) or that the guard
    refuses (no enabled apps, or too many missing) keeps the apps it had, and says so
    once. A source is read again only when it changed (a file's stamp) or, for a
    source without one, at most every RELOAD_EVERY seconds: a queue full of messages
    for an app that left must not mean one reload per message."""

    def __init__(
        self,
        apps: Sequence[App],
        *,
        source: str,
        load: Callable[[], list[App]],
        stamp: Callable[[], object] | None = None,
        max_shrink: float = 0.25,
    ) -> None:
        self._source = source
        self._load = load
        self._stamp = stamp
        self._max_shrink = max_shrink
        self._lock = threading.Lock()
        self._current = StaticApps(apps)
        self._seen = stamp() if stamp else None  # the stamp last read (loaded or refused)
        self._looked_at = time.monotonic()
        self._loaded_at = time.monotonic()
        self._refused: str | None = None

    def get(self, app_id: str, /) -> App | None:
        self._reload_if_changed()
        app = self._current.get(app_id)
        if app is None and self._may_have_changed():
            self._reload(why=f"a message names app {app_id!r}, unknown here")
            app = self._current.get(app_id)
        return app

    def _may_have_changed(self) -> bool:
        if self._stamp is not None:
            return bool(self._stamp() != self._seen)
        return time.monotonic() - self._loaded_at >= RELOAD_EVERY

    def secret_env(self) -> frozenset[str]:
        return self._current.secret_env()

    def ids(self) -> list[str]:
        return self._current.ids()

    def _reload_if_changed(self) -> None:
        if self._stamp is None or time.monotonic() - self._looked_at < STAT_EVERY:
            return
        self._looked_at = time.monotonic()
        if self._stamp() != self._seen:
            self._reload(why="its source changed")

    def _reload(self, why: str) -> None:
        with self._lock:
            stamp = self._stamp() if self._stamp else None
            # Refused or not, this version has been read: not again until it changes.
            self._seen, self._loaded_at = stamp, time.monotonic()
            try:
                apps = self._load()
            except RegistryError as exc:
                self._refuse(f"cannot reload the registry ({why}): " + "; ".join(exc.problems))
                return
            except RegistryUnavailable as exc:  # an API or a database away for now
                self._refuse(f"cannot reload the registry ({why}): {exc}")
                return
            problem = no_apps_problem(apps, self._source) or self._shrink(apps)
            if problem is not None:
                self._refuse(f"not reloading the registry ({why}): {problem}")
                return
            before = set(self._current.ids())
            self._current = StaticApps(apps)
            self._refused = None
            after = set(self._current.ids())
            if before != after:
                log.info(
                    "registry reloaded (%s): %d apps, %d added, %d gone",
                    why,
                    len(after),
                    len(after - before),
                    len(before - after),
                )

    def _shrink(self, apps: Sequence[App]) -> str | None:
        now = {app.id for app in apps if app.enabled}
        before = self._current.ids()
        gone = sorted(set(before) - now)
        return shrink_problem(
            source=self._source,
            enabled_now=len(now),
            before=len(before),
            missing=len(gone),
            examples=gone[:5],
            max_shrink=self._max_shrink,
            since="the registry this worker has",
        )

    def _refuse(self, message: str) -> None:
        if message != self._refused:  # once per problem, not once per message
            log.error("%s; keeping the %d apps it had", message, len(self._current.ids()))
        self._refused = message
