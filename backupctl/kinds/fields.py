"""The registry fields a kind takes, and the parsers that check them.

Each kind declares its fields as a KindSpec (its `fields` class attribute); the
registry (backupctl.registry.model) validates every app against its kind's spec,
so a kind's own rules live with the kind. A parser returns the value to keep or
raises ValueError with what is wrong (the registry puts the field's name first).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backupctl.errors import BackupFailed

if TYPE_CHECKING:
    from backupctl.registry.model import App


@dataclass(frozen=True)
class KindSpec:
    """The fields one backup kind takes: name -> parser, and which are required."""

    fields: Mapping[str, Callable[[Any], Any]]
    required: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()  # resolved relative to the registry file
    one_of: tuple[frozenset[str], ...] = ()  # exactly one of each group must be given


def nonempty_str(value: Any) -> str:
    """A non-empty string without NUL characters."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    return value


def path(value: Any) -> str:
    """A file system path (never a URL); the registry resolves a relative one."""
    text = nonempty_str(value)
    if "://" in text:
        raise ValueError(f"must be a path, not a URL: {text!r}")
    return text


def argv(value: Any) -> list[str]:
    """An argv list: a program (an absolute path or a name looked up on PATH) and
    its arguments, never run through a shell."""
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise ValueError('must be a non-empty list of strings, e.g. ["pg_dumpall", "--clean"]')
    if not value[0]:
        raise ValueError("the program (first item) must not be empty")
    if any("\0" in a for a in value):
        raise ValueError("must not contain a NUL character")
    program = value[0]
    if "/" in program and not program.startswith("/"):
        # Relative to what? cron, systemd and a shell each start in another folder.
        raise ValueError(
            f"the program {program!r} must be an absolute path or a name looked up on PATH"
        )
    return list(value)


def env_name(value: Any) -> str:
    """The name of an environment variable (where a secret waits)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("must be the name of an environment variable")
    return value


def app_dsn(app: App, environ: Mapping[str, str] | None = None) -> str:
    """The DSN of a database app, from its `dsn` field or from the environment
    variable its `dsn_env` names (the pair every database kind takes)."""
    environ = os.environ if environ is None else environ
    if "dsn" in app.params:
        return str(app.params["dsn"])
    name = str(app.params["dsn_env"])
    value = environ.get(name)
    if not value:
        raise BackupFailed(f"environment variable {name} (dsn_env) is not set")
    return value
