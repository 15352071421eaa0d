"""Registry source: a folder of TOML files (/etc/backupctl/apps.d/), one per team.

Every `*.toml` in it, in name order, each read like a registry file; hidden files
(an editor's `.#apps.toml`) and subfolders are left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from backupctl.errors import RegistryError
from backupctl.registry.sources import Entry
from backupctl.registry.sources.toml_file import read_toml_file


def registry_files(folder: str) -> list[Path]:
    """The folder's registry files, in name order; RegistryError if it can't be listed."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        raise RegistryError([f"{folder}: no such registry folder"]) from None
    except OSError as exc:
        raise RegistryError(
            [f"{folder}: cannot list the registry folder: {exc.strerror}"]
        ) from None
    paths = [Path(folder) / name for name in names if name.endswith(".toml")]
    return [path for path in paths if not path.name.startswith(".") and path.is_file()]


class Folder:
    """A registry folder: the apps of every file in it, as if in one file."""

    def __init__(self, path: str) -> None:
        self.label = path
        self._path = path

    def read(self) -> tuple[list[Entry], list[str]]:
        entries: list[Entry] = []
        problems: list[str] = []
        for file in registry_files(self._path):
            try:  # one broken file must not hide the problems of the others
                found, more = read_toml_file(str(file))
            except RegistryError as exc:
                problems.extend(exc.problems)
                continue
            entries.extend(found)
            problems.extend(more)
        return entries, problems

    def stamp(self) -> Callable[[], object] | None:
        def stamp() -> object:
            try:
                files = registry_files(self._path)
            except RegistryError as exc:
                return ("unlisted", exc.problems[0])
            found: list[tuple[object, ...]] = []
            for file in files:
                try:
                    st = file.stat()
                except OSError as exc:
                    found.append((file.name, exc.errno))
                    continue
                found.append((file.name, st.st_ino, st.st_mtime_ns, st.st_size))
            return tuple(found)

        return stamp
