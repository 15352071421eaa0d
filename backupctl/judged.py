"""Which apps a night is judged by: the enabled apps of the current registry.

The ledger keeps the rows of apps that have since left the registry (removed, or
disabled). Those rows are history: `check`, `status` and the metrics show them as
such, and never count them for or against a night. When the registry can't be read,
the apps the night planned stand in for it (and the output says so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backupctl.errors import RegistryError, RegistryUnavailable
from backupctl.registry import App

# A row's status that means its backup is stored (pruned ones were, and counted).
DONE = ("succeeded", "pruned")
OPEN = ("pending", "enqueued", "running")


@dataclass(frozen=True)
class Judged:
    """The apps judged, and where that list came from."""

    apps: frozenset[str]
    disabled: frozenset[str] = frozenset()
    # Set when the registry could not be read: `apps` are then the night's planned apps.
    registry_error: str | None = None

    @property
    def from_registry(self) -> bool:
        return self.registry_error is None

    def judges(self, app_id: str) -> bool:
        """Whether `app_id` counts for the night."""
        return app_id in self.apps

    def standing(self, app_id: str) -> str:
        """The app in the registry: "enabled", "disabled" or "removed"; "planned" or
        "unknown" when the registry could not be read."""
        if not self.from_registry:
            return "planned" if app_id in self.apps else "unknown"
        if app_id in self.apps:
            return "enabled"
        return "disabled" if app_id in self.disabled else "removed"

    def history_reason(self, app_id: str) -> str | None:
        """Why a row of `app_id` is history (None: it is judged)."""
        return {
            "disabled": "disabled in the registry",
            "removed": "no longer in the registry",
            # (with the registry unread, only skipped rows go unjudged)
            "unknown": "skipped when its app left the registry",
        }.get(self.standing(app_id))


def from_registry(apps: Iterable[App]) -> Judged:
    """Judge the registry's enabled apps."""
    listed = list(apps)
    return Judged(
        apps=frozenset(app.id for app in listed if app.enabled),
        disabled=frozenset(app.id for app in listed if not app.enabled),
    )


def from_planned(rows: Iterable[Mapping[str, Any]], registry_error: str) -> Judged:
    """Judge the apps a night planned (its rows, skipped ones aside: their apps had
    left the registry), because the registry could not be read."""
    planned = frozenset(str(row["app_id"]) for row in rows if row["status"] != "skipped")
    return Judged(apps=planned, registry_error=registry_error)


def load_judged(
    load_apps: Callable[[], Sequence[App]], planned_rows: Callable[[], Sequence[Mapping[str, Any]]]
) -> Judged:
    """The registry's enabled apps; if the registry can't be read, the planned apps."""
    try:
        return from_registry(load_apps())
    except RegistryError as exc:
        return from_planned(planned_rows(), "; ".join(exc.problems))
    except RegistryUnavailable as exc:  # an API or a database away for now
        return from_planned(planned_rows(), str(exc))


@dataclass
class Tally:
    """A night's rows counted over the judged apps."""

    apps: int = 0  # apps judged
    planned: int = 0  # their rows in the night
    succeeded: int = 0  # of those, succeeded (or since pruned)
    failed: int = 0
    skipped: int = 0
    open: int = 0  # pending, enqueued or running
    bytes: int = 0  # stored by their succeeded rows
    not_in_night: list[str] = field(default_factory=list)  # judged apps without a row
    history: list[str] = field(default_factory=list)  # apps of rows not judged


def tally(rows: Sequence[Mapping[str, Any]], judged: Judged) -> Tally:
    """Count the night's nightly rows of the judged apps; name the others."""
    result = Tally(apps=len(judged.apps))
    seen: set[str] = set()
    for row in rows:
        app_id = str(row["app_id"])
        seen.add(app_id)
        if not judged.judges(app_id):
            result.history.append(app_id)
            continue
        status = row["status"]
        result.planned += 1
        result.succeeded += status in DONE
        result.failed += status == "failed"
        result.skipped += status == "skipped"
        result.open += status in OPEN
        if status == "succeeded" and row.get("size_bytes") is not None:
            result.bytes += int(row["size_bytes"])
    result.not_in_night = sorted(judged.apps - seen)
    result.history.sort()
    return result
