"""Rendering: rich tables on a terminal, plain lines otherwise, JSON on request."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

from backupctl.wording import human_size as human_size  # re-exported: the CLI's sizes

if TYPE_CHECKING:
    from backupctl.executor import Outcome
    from backupctl.judged import Judged, Tally

JSON_SCHEMA_VERSION = 1


def use_rich() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def outcome_line(outcome: Outcome) -> str:
    """One line about one finished attempt: app, status, attempt, time, size or error."""
    from backupctl.durations import format_duration

    claim = outcome.claim
    detail = human_size(outcome.size) if outcome.status == "succeeded" else (outcome.error or "")
    return (
        f"{claim.app_id}  {outcome.status}  attempt {claim.attempt}  "
        f"{format_duration(outcome.seconds)}  {detail}".rstrip()
    )


def _default(value: Any) -> Any:
    from decimal import Decimal  # here: only --json output needs it, and it is slow to import

    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):  # Postgres sums and epochs
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit_json(kind: str, payload: dict[str, Any]) -> None:
    """Print one JSON document with its schema version and kind."""
    import json  # here: only --json output needs it

    doc = {"schema_version": JSON_SCHEMA_VERSION, "kind": kind, **payload}
    click.echo(json.dumps(doc, default=_default, indent=2, sort_keys=False))


def judged_json(judged: Judged, tally: Tally) -> dict[str, Any]:
    """The "judged" object of check's and status's JSON: which apps were judged (the
    registry's enabled ones, or the night's planned ones if it could not be read) and
    the night counted over them."""
    return {
        "source": "registry" if judged.from_registry else "planned",
        "registry_error": judged.registry_error,
        "apps": tally.apps,
        "planned": tally.planned,
        "succeeded": tally.succeeded,
        "failed": tally.failed,
        "skipped": tally.skipped,
        "open": tally.open,
        "bytes": tally.bytes,
        "not_in_night": tally.not_in_night,
        "history": tally.history,
    }


def table(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal; aligned plain columns otherwise."""
    if use_rich():
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title, title_justify="left")
        for header in headers:
            t.add_column(header, overflow="fold")
        for row in rows:
            t.add_row(*row)
        Console().print(t)
        return
    if title:
        click.echo(title)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = [headers, *rows]
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
        click.echo("  ".join([*cells, line[-1]]).rstrip())


class OutcomePrinter:
    """Prints each finished backup as it comes: a progress bar above the lines on a
    terminal, plain lines otherwise, only failures when quiet, nothing for --json."""

    def __init__(self, *, quiet: bool, as_json: bool) -> None:
        self.quiet = quiet
        self.as_json = as_json
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> OutcomePrinter:
        if sys.stdout.isatty() and not self.quiet and not self.as_json:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            console = Console(no_color=bool(os.environ.get("NO_COLOR")))
            self._progress = Progress(
                TextColumn("backing up"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def shows_progress(self) -> bool:
        return self._progress is not None

    def planned(self, to_do: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task("backups", total=to_do)

    def outcome(self, outcome: Outcome) -> None:
        if self.as_json or (self.quiet and outcome.status != "failed"):
            return
        line = outcome_line(outcome)
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
            if self._task is not None and outcome.status in ("succeeded", "failed"):
                self._progress.advance(self._task)
        else:
            click.echo(line)
