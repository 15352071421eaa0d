"""The grid: apps as rows, nights as columns, one cell per (app, night).

Built from a few ledger reads over the last N nights only (never all history), and
shared by `runs --grid` (the terminal) and `report --html` (the page). Everything
here is pure except `load_grid`, which asks the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from functools import cache
from typing import Any, Protocol

SUCCEEDED = "succeeded"
WARNING = "warning"
FAILED = "failed"
RUNNING = "running"
SKIPPED = "skipped"
NOT_PLANNED = "not planned"
MISSED = "missed"

# State -> its one character (plain output, the page's cells) and its legend label.
CHARS: dict[str, str] = {
    SUCCEEDED: ".",
    WARNING: "W",
    FAILED: "F",
    RUNNING: "R",
    SKIPPED: "s",
    NOT_PLANNED: "-",
    MISSED: "M",
}
LABELS: dict[str, str] = {
    SUCCEEDED: "succeeded",
    WARNING: "succeeded with a warning",
    FAILED: "failed",
    RUNNING: "running or waiting to run",
    SKIPPED: "skipped (left the registry)",
    NOT_PLANNED: "not planned that night",
    MISSED: "missed night (no run recorded)",
}

# The ledger's backup status -> the cell's state (a warning is decided per row).
_STATE_OF_STATUS = {
    "succeeded": SUCCEEDED,
    "pruned": SUCCEEDED,  # a good backup whose artifact retention has since deleted
    "failed": FAILED,
    "pending": RUNNING,
    "enqueued": RUNNING,
    "running": RUNNING,
    "skipped": SKIPPED,
}

# How much of a row's error or warning the ledger sends: a tooltip and a list line,
# never a whole stderr tail per cell.
NOTE_CHARS = 300

# The terminal layout: labels are cut past this, the grid is this far from them.
LABEL_MAX = 32
GAP = 2


@dataclass(frozen=True, slots=True)
class Cell:
    """One app in one night."""

    state: str
    status: str | None = None  # the ledger's status (e.g. pruned); None: no row
    size_bytes: int | None = None
    duration_s: float | None = None
    note: str | None = None  # error or warning as stored: redact before showing

    @property
    def trouble(self) -> bool:
        return self.state in (FAILED, WARNING)


@dataclass(frozen=True, slots=True)
class Night:
    """One column: a night the ledger recorded (a missed one too)."""

    run_date: date
    status: str  # nightly_runs.status: running, complete, incomplete, missed
    duration_s: float | None = None
    drills: int = 0
    drills_failed: int = 0

    @property
    def missed(self) -> bool:
        return self.status == "missed"


@dataclass(frozen=True)
class Grid:
    """Nights oldest first (left to right); apps trouble first; a cell for each."""

    nights: tuple[Night, ...]
    apps: tuple[str, ...]
    rows: Mapping[str, tuple[Cell, ...]]  # app -> one cell per night, in night order
    drills: tuple[dict[str, Any], ...] = field(default=())  # the latest drills, failed first

    def newest(self, count: int) -> Grid:
        """The same grid with only the newest `count` nights, sorted again for them."""
        if count >= len(self.nights):
            return self
        cut = len(self.nights) - count
        rows = {app: cells[cut:] for app, cells in self.rows.items()}
        shown = self.nights[cut:]
        first = shown[0].run_date if shown else None
        return Grid(
            shown,
            sort_apps(rows),
            rows,
            tuple(d for d in self.drills if first is not None and d["run_date"] >= first),
        )

    def column(self, index: int) -> list[Cell]:
        """Every app's cell in night `index` (in the apps' order)."""
        return [self.rows[app][index] for app in self.apps]

    def counts(self, index: int) -> dict[str, int]:
        """How many apps are in each state in night `index` (every state, zeros too)."""
        found = dict.fromkeys(CHARS, 0)
        for cell in self.column(index):
            found[cell.state] += 1
        return found

    def trouble(self) -> list[tuple[Night, str, Cell]]:
        """Every failed or warned cell, newest night first, then in the apps' order."""
        return [
            (night, app, self.rows[app][i])
            for i, night in reversed(list(enumerate(self.nights)))
            for app in self.apps
            if self.rows[app][i].trouble
        ]


@cache
def _bare(status: str, warned: bool) -> Cell:
    state = _STATE_OF_STATUS.get(status, RUNNING)
    return Cell(WARNING if state == SUCCEEDED and warned else state, status)


def cell_of(row: Mapping[str, Any]) -> Cell:
    """The cell of one nightly backup row: of grid_cells, or of grid_states (no
    size, duration or note: one shared cell per status)."""
    status = str(row["status"])
    bare = _bare(status, bool(row["warned"]))
    if "size_bytes" not in row:
        return bare
    state = bare.state
    duration = row["duration_s"]
    return Cell(
        state,
        status,
        row["size_bytes"],
        float(duration) if duration is not None else None,
        row.get("note"),
    )


def trouble_key(app: str, cells: Sequence[Cell]) -> tuple[int, int, str]:
    """Sort key: an app whose latest backup failed first, then one that failed in an
    earlier night shown, then one with a warning, then the rest; within each, the
    most troubled cells first, then by app id."""
    latest = next((c for c in reversed(cells) if c.state not in (NOT_PLANNED, MISSED)), None)
    failed = sum(1 for c in cells if c.state == FAILED)
    warned = sum(1 for c in cells if c.state == WARNING)
    if latest is not None and latest.state == FAILED:
        rank = 0
    elif failed:
        rank = 1
    elif warned:
        rank = 2
    else:
        rank = 3
    return rank, -(failed + warned), app


def sort_apps(rows: Mapping[str, Sequence[Cell]]) -> tuple[str, ...]:
    """The apps, trouble first (see trouble_key)."""
    return tuple(sorted(rows, key=lambda app: trouble_key(app, rows[app])))


def build_grid(
    nights: Sequence[Night],
    rows: Iterable[Mapping[str, Any]],
    pattern: str | None = None,
    drills: Sequence[dict[str, Any]] = (),
) -> Grid:
    """The grid of `nights` (any order) from their nightly backup rows (grid_cells):
    every app with a row in one of them, or only those whose id matches the
    shell-style `pattern`. A missed night is a column of MISSED cells; an app with
    no row in a night that ran is NOT_PLANNED there."""
    ordered = tuple(sorted(nights, key=lambda n: n.run_date))
    index = {n.run_date: i for i, n in enumerate(ordered)}
    blank = [Cell(MISSED) if n.missed else Cell(NOT_PLANNED) for n in ordered]
    found: dict[str, list[Cell]] = {}
    left_out: set[str] = set()  # apps the pattern does not match: matched once each
    for row in rows:
        app = str(row["app_id"])
        at = index.get(row["run_date"])
        if at is None or app in left_out:
            continue
        cells = found.get(app)
        if cells is None:
            if pattern is not None and not fnmatchcase(app, pattern):
                left_out.add(app)
                continue
            cells = found[app] = list(blank)
        cells[at] = cell_of(row)
    frozen = {app: tuple(cells) for app, cells in found.items()}
    return Grid(ordered, sort_apps(frozen), frozen, tuple(drills))


def legend() -> list[tuple[str, str, str]]:
    """(state, character, label) for every state, in the order shown."""
    return [(state, CHARS[state], LABELS[state]) for state in CHARS]


def label_width(apps: Sequence[str], width: int) -> int:
    """How wide the app column is: the longest id, at most LABEL_MAX and a third of
    the width (room for nights stays), at least 3."""
    longest = max((len(a) for a in apps), default=3)
    return max(3, min(longest, LABEL_MAX, width // 3))


def nights_that_fit(width: int, label: int, nights: int) -> int:
    """How many one-character night columns fit in `width` beside a label column
    `label` wide: all of them if they fit, else the newest that do (at least one)."""
    return max(1, min(nights, width - label - GAP))


def fit(grid: Grid, width: int) -> tuple[Grid, int]:
    """The grid cut to the newest nights that fit in `width` columns, and the width
    of its app column."""
    label = label_width(grid.apps, width)
    return grid.newest(nights_that_fit(width, label, len(grid.nights))), label


def widest_fit(width: int) -> int:
    """The most nights any grid can show in `width` columns (the narrowest label):
    what the terminal asks the ledger for at most."""
    return nights_that_fit(width, 3, 10**6)


def shorten(app: str, width: int) -> str:
    """`app` in at most `width` characters, cut with '…'."""
    return app if len(app) <= width else app[: width - 1] + "…"


class GridLedger(Protocol):
    """The ledger reads a grid needs (backupctl.ledger.Ledger has them)."""

    def grid_nights(self, last: int) -> list[dict[str, Any]]: ...

    def grid_cells(self, first: date, last: date, *, notes: bool) -> list[dict[str, Any]]: ...

    def grid_states(self, first: date, last: date) -> list[dict[str, Any]]: ...

    def grid_drills(
        self, first: date, last: date, app_ids: Sequence[str] | None, limit: int
    ) -> list[dict[str, Any]]: ...

    def night_apps(self, run_date: date, limit: int) -> tuple[int, list[str]]: ...


def load_grid(
    ledger: GridLedger,
    last: int,
    pattern: str | None = None,
    *,
    detail: bool = True,
    notes: bool = False,
    drills: int = 0,
) -> Grid:
    """The grid of the latest `last` nights recorded. `detail`: with each backup's
    size and duration (the terminal shows only states, and reads only those);
    `notes`: with its error or warning (the page shows them); `drills`: with up to
    that many of their latest drills, failed ones first."""
    found = ledger.grid_nights(last)
    nights = [
        Night(
            n["run_date"],
            str(n["status"]),
            float(n["duration_s"]) if n["duration_s"] is not None else None,
            int(n["drills"]),
            int(n["drills_failed"]),
        )
        for n in found
    ]
    if not nights:
        return Grid((), (), {})
    first, newest = min(n.run_date for n in nights), max(n.run_date for n in nights)
    rows = (
        ledger.grid_cells(first, newest, notes=notes)
        if detail or notes
        else ledger.grid_states(first, newest)
    )
    grid = build_grid(nights, rows, pattern)
    if not drills:
        return grid
    apps = list(grid.apps) if pattern is not None else None
    shown = ledger.grid_drills(first, newest, apps, drills)
    return Grid(grid.nights, grid.apps, grid.rows, tuple(shown))


def no_match(command: str, pattern: str, ledger: GridLedger, grid: Grid) -> str:
    """The error for an --app pattern that matched no app of the grid's nights,
    naming a few apps of the latest night that ran (read cheaply: a night of 100k
    apps is not read whole)."""
    from backupctl.wording import short_list

    message = f"{command}: no app matches --app {pattern!r} in the last {len(grid.nights)} nights"
    ran = [n for n in grid.nights if not n.missed]
    if ran:
        count, sample = ledger.night_apps(ran[-1].run_date, 5)
        if count:
            message += f" (the apps of {ran[-1].run_date}: {short_list(sample, count)})"
    return message
