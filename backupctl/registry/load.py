"""Every source's apps, validated the same way: one message per problem, naming the
source, the app's place and its id (or its number when it has none)."""

from __future__ import annotations

from collections.abc import Mapping

from backupctl.errors import RegistryError
from backupctl.registry.model import App, build_app
from backupctl.registry.sources import Source, app_label, json_type


def apps_from(source: Source) -> list[App]:
    """Read `source` and validate every app it lists; raise RegistryError listing
    every problem at once (or RegistryUnavailable if the source can't be reached)."""
    return [app for app, _ in placed_apps(source)]


def placed_apps(source: Source) -> list[tuple[App, str]]:
    """apps_from(source), each with where it was found ("apps.d/shop.toml:3")."""
    entries, problems = source.read()
    apps: list[tuple[App, str]] = []
    seen: dict[str, str] = {}
    for entry in entries:
        where = f"{entry.where}: {app_label(entry.table, entry.number)}"
        if not isinstance(entry.table, Mapping):
            problems.append(
                f"{where}: must be an object of the app's fields, got {json_type(entry.table)}"
            )
            continue
        # A JSON null or an SQL NULL is a field not given (a query's rows share columns).
        table = {name: value for name, value in entry.table.items() if value is not None}
        app, app_problems = build_app(table, entry.base_dir)
        problems.extend(f"{where}: {problem}" for problem in app_problems)
        if app is None:
            continue
        if app.id in seen:
            problems.append(f"{where}: duplicate id {app.id!r} (first defined at {seen[app.id]})")
            continue
        seen[app.id] = entry.place or f"{entry.where}, app #{entry.number}"
        apps.append((app, seen[app.id]))
    if problems:
        raise RegistryError(problems)
    return apps
