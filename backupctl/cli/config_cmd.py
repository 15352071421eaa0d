"""backupctl config check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from backupctl.cli import cli
from backupctl.cli.common import settings_from
from backupctl.cli.render import emit_json, table
from backupctl.config import DURATION_PARSERS, KEYS, Key
from backupctl.durations import format_duration
from backupctl.redact import MASK, redact_url
from backupctl.wording import plural

if TYPE_CHECKING:
    from backupctl.registry import App


def _shown(value: Any, key: Key) -> str:
    if value is None:
        return ""
    if key.parse in DURATION_PARSERS:
        return format_duration(float(value))
    if key.dotted == "monitoring.notify":  # Apprise URLs: scheme and host at most
        from backupctl.notifications import shown_notify_url

        return ", ".join(shown_notify_url(url) for url in value)
    if isinstance(value, tuple):  # [encryption] recipients, [monitoring] notify_on
        return ", ".join(map(str, value))
    text = str(getattr(value, "key", value))  # a ZoneInfo shows as its name
    if not key.secret:
        return text
    parts = urlsplit(text)
    if parts.scheme.startswith("http") and key.dotted == "monitoring.ping_url":
        return f"{parts.scheme}://{parts.hostname}/{MASK}"  # a ping URL's path is its secret
    return redact_url(text)


def _app_json(app: App, at: str) -> dict[str, Any]:
    return {"id": app.id, "kind": app.kind, "enabled": app.enabled, "from": at}


@cli.group("config")
def config() -> None:
    """The configuration."""


@config.command("check")
@click.option("--apps", "list_apps", is_flag=True, help="Also list the apps the registry yields.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema_version 1).")
@click.pass_context
def config_check(ctx: click.Context, list_apps: bool, as_json: bool) -> None:
    """Validate the configuration and registry; show every setting in effect and its origin.

    Secrets are masked (a registry URL's password, its token; a notify URL shows
    its scheme and host at most). Exit 0 when valid,
    2 (with every problem listed) when not, 3 when the registry's API or database
    can't be reached, 1 when valid but an enabled app could not be backed up now: a
    folder that does not exist or is not readable, a program (a hook's too) not
    found on PATH or not executable (a mount or a package may still appear). Each of
    those is one line naming the app and the field; access is checked for the user running this
    command, so run it as the user the backups run as. --apps lists each app the
    registry yields: its id, kind, whether it is enabled and where it was found.

    \b
    Examples:
      backupctl --config /etc/backupctl/backupctl.toml config check
      backupctl config check --apps
    """
    from backupctl.context import (
        kind_options,
        load_placed_apps,
        open_registry,
        open_storages,
        storage_url,
    )
    from backupctl.kinds import kind_for
    from backupctl.kinds.preflight import hook_problems

    settings = settings_from(ctx)
    source = open_registry(settings)
    placed = load_placed_apps(settings, source)
    apps = [app for app, _ in placed]
    open_storages(settings)
    options = kind_options(settings)
    failing_apps = 0
    now_failing: list[str] = []
    for app in apps:
        if not app.enabled:
            continue
        problems = kind_for(app, options).preflight(app) + hook_problems(app)
        failing_apps += bool(problems)
        now_failing.extend(f"app {app.id!r}: {problem}" for problem in problems)
    values = settings.values
    rows = [
        [key.dotted, _shown(values[key.dotted], key), settings.origins[key.dotted]] for key in KEYS
    ]
    rows.append(["(storage in effect)", storage_url(settings), "derived"])
    shown = ", ".join(settings.recipients) or "none: backups are not encrypted"
    rows.append(["(recipients in effect)", shown, "derived"])
    enabled = sum(1 for app in apps if app.enabled)
    if as_json:
        emit_json(
            "config",
            {
                "config_file": settings.config_file,
                "settings": {r[0]: {"value": r[1], "origin": r[2]} for r in rows},
                "registry": source.label,
                "apps": {
                    "total": len(apps),
                    "enabled": enabled,
                    **({"list": [_app_json(app, at) for app, at in placed]} if list_apps else {}),
                },
                "would_fail_now": now_failing,
            },
        )
        ctx.exit(1 if now_failing else 0)
    table(
        f"configuration: {settings.config_file or 'no file (defaults and environment)'}",
        ["key", "value", "origin"],
        rows,
    )
    if list_apps:
        table(
            f"apps of the registry {source.label}",
            ["id", "kind", "enabled", "from"],
            [[app.id, app.kind, "yes" if app.enabled else "no", at] for app, at in placed],
        )
    click.echo(f"registry {source.label}: {len(apps)} apps, {enabled} enabled")
    if now_failing:
        click.echo(f"configuration is valid, but {plural(failing_apps, 'backup')} would fail now:")
        for line in now_failing:
            click.echo(f"  {line}")
        ctx.exit(1)
    click.echo("configuration is valid")
