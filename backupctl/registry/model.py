"""The App model and the rules every registry source shares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupctl.kinds import KINDS, kind_class

if TYPE_CHECKING:
    from backupctl.kinds.fields import KindSpec

APP_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class App:
    """One app to back up. `params` holds the kind's own fields."""

    id: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    storage: str | None = None  # overrides the configured storage for this app
    allow_empty: bool = False  # an empty dump (no output, files or tables) may succeed
    # The age recipients its artifacts are encrypted to: the registry's own for this
    # app, else (once backupctl.context resolves it) [encryption]'s; () is unencrypted.
    recipients: tuple[str, ...] | None = None
    # Hooks (backupctl.hooks): argv lists run before the dump and always after it.
    before: tuple[str, ...] | None = None
    after: tuple[str, ...] | None = None


def validate_app_id(value: Any) -> str | None:
    """Return a problem with `value` as an app id, or None if it is fine."""
    if not isinstance(value, str):
        return f"id must be a string, got {value!r}"
    if not APP_ID.fullmatch(value):
        return (
            f"id {value!r} is not valid: use 1-128 of a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return None


def _storage_url(value: Any) -> str:
    from backupctl.storage import storage_url_problem

    if not isinstance(value, str):
        raise ValueError(f"must be a file:// or s3:// URL, got {value!r}")
    if (problem := storage_url_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _hook(value: Any) -> tuple[str, ...]:
    from backupctl.kinds.fields import argv as parse_argv

    argv = parse_argv(value)
    if not all(argv):
        raise ValueError("every item must be a non-empty string")
    return tuple(argv)


COMMON_FIELDS = frozenset(
    {"id", "kind", "enabled", "storage", "allow_empty", "recipients", "before", "after"}
)


def kind_spec(kind: str) -> KindSpec | None:
    """The fields kind `kind` takes (its module imported now), or None if unknown."""
    return kind_class(kind).fields if kind in KINDS else None


def build_app(table: Mapping[str, Any], base_dir: Path | None) -> tuple[App | None, list[str]]:
    """Validate one registry entry; return the App or the list of problems. Relative
    paths resolve against `base_dir` (a registry file's folder); with None (an API, a
    query) they have nothing to be relative to and are refused."""
    problems: list[str] = []
    app_id = table.get("id")
    if app_id is None:
        problems.append("missing field 'id'")
    elif (problem := validate_app_id(app_id)) is not None:
        problems.append(problem)
    kind = table.get("kind")
    spec = kind_spec(kind) if isinstance(kind, str) else None
    if kind is None:
        problems.append(f"missing field 'kind' (one of: {', '.join(sorted(KINDS))})")
    elif spec is None:
        problems.append(f"unknown kind {kind!r} (one of: {', '.join(sorted(KINDS))})")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"enabled must be true or false, got {enabled!r}")
    allow_empty = table.get("allow_empty", False)
    if not isinstance(allow_empty, bool):
        problems.append(f"allow_empty must be true or false, got {allow_empty!r}")
    storage = table.get("storage")
    if storage is not None:
        try:
            storage = _storage_url(storage)
        except ValueError as exc:
            problems.append(f"storage: {exc}")
    recipients: tuple[str, ...] | None = None
    if "recipients" in table:
        from backupctl.encryption import recipients_problems

        found, bad = recipients_problems(table["recipients"])
        problems.extend(f"recipients: {p}" for p in bad)
        recipients = tuple(found)
    hooks: dict[str, tuple[str, ...]] = {}
    for name in ("before", "after"):
        if name in table:
            try:
                hooks[name] = _hook(table[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")

    params: dict[str, Any] = {}
    if spec is not None:
        for name in sorted(set(table) - COMMON_FIELDS):
            if name not in spec.fields:
                known = ", ".join(sorted(set(spec.fields) | COMMON_FIELDS))
                problems.append(f"unknown field {name!r} for kind {kind!r} (known: {known})")
                continue
            try:
                value = spec.fields[name](table[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if name in spec.paths and base_dir is None and not value.startswith("/"):
                problems.append(
                    f"{name}: must be an absolute path in a registry that is not a file, "
                    f"got {value!r}"
                )
                continue
            if name in spec.paths and base_dir is not None:
                value = str((base_dir / value).resolve())
            params[name] = value
        for name in sorted(spec.required - set(table)):
            problems.append(f"missing field {name!r} for kind {kind!r}")
        for group in spec.one_of:
            given = group & set(table)
            if len(given) != 1:
                problems.append(f"give exactly one of {', '.join(sorted(group))}")
    if problems:
        return None, problems
    assert isinstance(app_id, str) and isinstance(kind, str)
    app = App(
        id=app_id,
        kind=kind,
        params=params,
        enabled=enabled,
        storage=storage,
        allow_empty=allow_empty,
        recipients=recipients,
        before=hooks.get("before"),
        after=hooks.get("after"),
    )
    return app, []
