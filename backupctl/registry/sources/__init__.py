"""Where the registry comes from: one module per source, behind one small seam.

A source only fetches: it yields each app as the raw mapping it was given, with where
it was found (a file and line, a URL, a query), and raises RegistryError when its
answer is malformed as a whole (exit 2) or RegistryUnavailable when it cannot be
reached (exit 3). Every app is validated in one place (backupctl.registry.load, with
model.build_app), so every source gets exactly the same messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from backupctl.errors import RegistryUnavailable
from backupctl.wording import plural

log = logging.getLogger(__name__)
T = TypeVar("T")

# The `registry` setting's forms, by how it starts; anything else is a path.
HTTP_SCHEMES = ("http://", "https://")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


# An API or a database that fails to answer is asked this many times in all, waiting
# BACKOFF seconds before the second attempt and twice as long before each next one.
ATTEMPTS = 3
BACKOFF = 1.0


class Retryable(Exception):
    """A failure to reach a source that another attempt may not meet (a refused
    connection, a timeout, a 5xx). The message is safe to show."""


def with_retries(label: str, attempt: Callable[[], T]) -> T:
    """`attempt()`, again after a Retryable failure, up to ATTEMPTS times with
    backoff; then RegistryUnavailable (exit 3) naming the source and the last failure."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except Retryable as exc:
            if number == ATTEMPTS:
                raise RegistryUnavailable(
                    f"{label}: cannot read the registry: {exc} ({plural(ATTEMPTS, 'attempt')})"
                ) from None
            wait = BACKOFF * 2 ** (number - 1)
            # INFO, not WARNING: the error that may follow says it all, in one line.
            log.info("%s: registry attempt %d failed (%s); again in %gs", label, number, exc, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Entry:
    """One app as a source gave it, before validation."""

    table: Any  # a mapping of the app's fields, unless the source's answer is malformed
    where: str  # how messages name its place: "apps.toml:12", the (masked) URL
    number: int  # its position in the source, from 1: "app #3" when it has no id
    # Relative paths resolve here (a registry file's folder); None: they must be absolute.
    base_dir: Path | None = None
    place: str | None = None  # "first defined at ...": `where` plus the number if None


class Source(Protocol):
    """A registry source. `label` names it in messages, credentials masked."""

    label: str

    def read(self) -> tuple[list[Entry], list[str]]:
        """Every app it lists, and the problems of the answer besides the apps' own
        (all reported together); raise RegistryError or RegistryUnavailable when
        there is nothing to read."""

    def stamp(self) -> Callable[[], object] | None:
        """What changes when the source changes (a file's inode and mtime), for a
        worker to look at cheaply; None when only reading it again can tell."""


@dataclass(frozen=True)
class RegistrySpec:
    """The `registry*` settings: where the apps come from and how to ask."""

    location: str  # a TOML file, a folder of them, an http(s):// or postgresql:// URL
    token_env: str | None = None  # http(s): the variable holding the Bearer token
    ca_file: str | None = None  # https: the CA bundle to verify with; None: the system's
    timeout: float = 30.0  # seconds, for one attempt
    query: str | None = None  # postgresql: the SELECT whose rows are the apps


def app_label(table: object, number: int) -> str:
    """How messages name an app: by its id, else by its position ("app #3")."""
    app_id = table.get("id") if isinstance(table, dict) else None
    return f"app {app_id!r}" if isinstance(app_id, str) else f"app #{number}"


def json_type(value: object) -> str:
    """What a value of a JSON (or TOML, or SQL) answer is, in an operator's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def source_kind(location: str) -> str:
    """ "http", "postgres" or "path": which source `location` names."""
    lowered = location.lower()
    if lowered.startswith(HTTP_SCHEMES):
        return "http"
    if lowered.startswith(POSTGRES_SCHEMES):
        return "postgres"
    return "path"


def open_source(spec: RegistrySpec) -> Source:
    """The source `spec.location` names: a folder, a file, an API or a query."""
    kind = source_kind(spec.location)
    if kind == "http":
        from backupctl.registry.sources.http_json import HttpJson

        return HttpJson(spec)
    if kind == "postgres":
        from backupctl.registry.sources.pg_query import PgQuery

        return PgQuery(spec)
    if spec.location.endswith("/") or Path(spec.location).is_dir():
        from backupctl.registry.sources.folder import Folder

        return Folder(spec.location)
    from backupctl.registry.sources.toml_file import TomlFile

    return TomlFile(spec.location)
