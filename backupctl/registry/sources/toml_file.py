"""Registry source: a TOML file of [[app]] tables."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

from backupctl.errors import RegistryError
from backupctl.registry.lookup import file_stamp
from backupctl.registry.sources import Entry

_APP_HEADER = re.compile(r"^\s*\[\[\s*app\s*\]\]")


def _header_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), start=1) if _APP_HEADER.match(line)]


def read_toml_file(path: str) -> tuple[list[Entry], list[str]]:
    """The [[app]] tables of the file at `path`, each placed at its header's line;
    RegistryError when the file cannot be read as a registry at all."""
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
    entries = []
    for index, table in enumerate(tables):
        # An inline `app = [{...}]` has no header lines: then the file alone.
        where = f"{path}:{lines[index]}" if len(lines) == len(tables) else path
        entries.append(Entry(table, where, index + 1, base_dir=file.parent, place=where))
    return entries, problems


class TomlFile:
    """A registry file: /etc/backupctl/apps.toml."""

    def __init__(self, path: str) -> None:
        self.label = path
        self._path = path

    def read(self) -> tuple[list[Entry], list[str]]:
        return read_toml_file(self._path)

    def stamp(self) -> Callable[[], object] | None:
        return file_stamp(self._path)
