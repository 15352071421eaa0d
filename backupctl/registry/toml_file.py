"""Registry source: a TOML file of [[app]] tables."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from backupctl.errors import RegistryError
from backupctl.registry.model import App, build_app

_APP_HEADER = re.compile(r"^\s*\[\[\s*app\s*\]\]")


def _header_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), start=1) if _APP_HEADER.match(line)]


def load_registry(path: str) -> list[App]:
    """Read and validate every app in `path`; raise RegistryError listing every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError([f"{path}: no such registry file"]) from None
    except OSError as exc:
        raise RegistryError([f"{path}: cannot read the registry: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise RegistryError([f"{path}: not valid UTF-8 text"]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError([f"{path}: not valid TOML: {exc}"]) from None

    problems = [
        f"{path}: {name}: unknown top-level key (apps go in [[app]] tables)"
        for name in doc
        if name != "app"
    ]
    tables = doc.get("app", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RegistryError([*problems, f"{path}: 'app' must be a list of [[app]] tables"])
    lines = _header_lines(text)
    apps: list[App] = []
    seen: dict[str, str] = {}
    for index, table in enumerate(tables):
        line = f":{lines[index]}" if len(lines) == len(tables) else ""
        label = f"app {table['id']!r}" if isinstance(table.get("id"), str) else f"app #{index + 1}"
        where = f"{path}{line}: {label}"
        app, app_problems = build_app(table, file.parent)
        problems.extend(f"{where}: {p}" for p in app_problems)
        if app is None:
            continue
        if app.id in seen:
            problems.append(f"{where}: duplicate id {app.id!r} (first defined at {seen[app.id]})")
            continue
        seen[app.id] = f"{path}{line}"
        apps.append(app)
    if problems:
        raise RegistryError(problems)
    return apps
