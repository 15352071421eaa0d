"""Which apps are judged, and a night's rows counted over them."""

from __future__ import annotations

from typing import Any

from backupctl.judged import from_planned, from_registry, tally
from backupctl.registry import App
from backupctl.wording import plural


def row(app_id: str, status: str, size: int | None = None) -> dict[str, Any]:
    return {"app_id": app_id, "status": status, "size_bytes": size}


REGISTRY = [App("shop", "command"), App("wiki", "files"), App("crm", "command", enabled=False)]


def test_the_registry_judges_its_enabled_apps_and_names_the_others() -> None:
    judged = from_registry(REGISTRY)

    assert judged.apps == {"shop", "wiki"} and judged.from_registry
    assert [judged.standing(a) for a in ("shop", "crm", "gone")] == [
        "enabled",
        "disabled",
        "removed",
    ]
    assert judged.history_reason("shop") is None
    assert judged.history_reason("crm") == "disabled in the registry"
    assert judged.history_reason("gone") == "no longer in the registry"


def test_a_tally_counts_only_the_judged_apps_rows() -> None:
    rows = [
        row("shop", "succeeded", 100),
        row("wiki", "failed"),
        row("crm", "failed"),
        row("gone", "succeeded", 5000),
    ]

    t = tally(rows, from_registry([*REGISTRY, App("new", "command")]))

    assert (t.apps, t.succeeded, t.failed, t.open, t.bytes) == (3, 1, 1, 0, 100)
    assert t.not_in_night == ["new"]
    assert t.history == ["crm", "gone"]


def test_without_the_registry_the_planned_apps_are_judged_and_skipped_rows_are_history() -> None:
    rows = [row("shop", "succeeded", 1), row("wiki", "running"), row("gone", "skipped")]

    judged = from_planned(rows, "apps.toml: no such registry file")
    t = tally(rows, judged)

    assert judged.apps == {"shop", "wiki"} and not judged.from_registry
    assert judged.standing("shop") == "planned" and judged.standing("gone") == "unknown"
    assert (t.apps, t.succeeded, t.open, t.history) == (2, 1, 1, ["gone"])


def test_counts_take_the_plural_they_need() -> None:
    assert [plural(n, "app") for n in (0, 1, 2)] == ["0 apps", "1 app", "2 apps"]
    assert plural(1, "backup") == "1 backup"
    assert plural(3, "entry", "entries") == "3 entries"
