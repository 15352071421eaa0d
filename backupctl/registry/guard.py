"""The registry guard: an empty or suddenly shrunken registry is refused, never run.

A truncated file, every app disabled, an API that answers with an empty list: each
would otherwise make a night with no backups that looks like a good one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from backupctl.errors import RegistryError
from backupctl.registry.model import App
from backupctl.wording import plural

if TYPE_CHECKING:
    from backupctl.ledger import Ledger


def no_apps_problem(apps: Sequence[App], source: str) -> str | None:
    """Why `apps` can't be a night's registry because nothing in it is enabled."""
    if any(app.enabled for app in apps):
        return None
    listed = f"{plural(len(apps), 'app')}, all disabled" if apps else "no apps at all"
    return f"{source}: the registry lists no enabled apps ({listed}); nothing was planned"


def shrink_problem(
    *,
    source: str,
    enabled_now: int,
    before: int,
    missing: int,
    examples: Sequence[str],
    max_shrink: float,
    since: str,
) -> str | None:
    """Why a registry that lost `missing` of the `before` apps `since` must be refused:
    more than `max_shrink` of them and more than one. None when it may run."""
    if missing <= 1 or missing <= max_shrink * before:
        return None
    shown = ", ".join(examples) + (" and more" if missing > len(examples) else "")
    return (
        f"{source}: the registry lists {plural(enabled_now, 'enabled app')}, but {since} had "
        f"{before}: "
        f"{missing} of those are missing ({shown}), more than [run] max_shrink = "
        f"{max_shrink:.0%}; if the change is intended, run again with --allow-shrink"
    )


def check_night_registry(
    apps: Sequence[App],
    source: str,
    ledger: Ledger | None,
    run_date: date,
    *,
    max_shrink: float,
    allow_shrink: bool,
) -> None:
    """Raise RegistryError (exit 2, nothing planned) for a registry that lists no
    enabled apps, or that lost too many of the latest earlier planned night's apps
    (unless `allow_shrink`). With `ledger` None only the first is checked."""
    if (problem := no_apps_problem(apps, source)) is not None:
        raise RegistryError([problem])
    if ledger is None or allow_shrink:
        return
    enabled = [app.id for app in apps if app.enabled]
    earlier = ledger.earlier_night(run_date, enabled)
    if earlier is None:
        return
    problem = shrink_problem(
        source=source,
        enabled_now=len(enabled),
        before=earlier.planned,
        missing=earlier.missing,
        examples=earlier.missing_examples,
        max_shrink=max_shrink,
        since=f"night {earlier.run_date}",
    )
    if problem is not None:
        raise RegistryError([problem])
