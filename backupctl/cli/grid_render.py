"""`runs --grid` on a terminal (coloured cells) or a pipe (one character per cell).

One layout, two renderers: the layout is a list of lines, each a list of segments
(text, state or None); plain output joins the texts, rich colours each state.
"""

from __future__ import annotations

import shutil
from typing import Any

import click

from backupctl.cli.render import use_rich
from backupctl.grid import (
    CHARS,
    FAILED,
    MISSED,
    NOT_PLANNED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    WARNING,
    Grid,
    fit,
    legend,
    shorten,
)

Segment = tuple[str, str | None]
Line = list[Segment]

# rich styles: a background per state, the character kept (colour-blind, copy-paste).
STYLES = {
    SUCCEEDED: "black on green",
    WARNING: "black on yellow",
    FAILED: "bold white on red",
    RUNNING: "black on cyan",
    SKIPPED: "white on bright_black",
    NOT_PLANNED: "bright_black",
    MISSED: "bold white on magenta",
}


def terminal_width() -> int:
    """The terminal's width; COLUMNS or 80 when piped."""
    return shutil.get_terminal_size((80, 24)).columns


def layout(grid: Grid, width: int, asked: int) -> list[Line]:
    """The grid's lines in `width` columns: a title, two rows of day-of-month digits
    over the night columns, one row per app, then the legend. `asked`: how many
    nights were asked for (the title says how many did not fit)."""
    shown, label = fit(grid, width)
    pad = " " * (label + 2)
    nights = shown.nights
    title = f"{len(nights)} nights, {nights[0].run_date} to {nights[-1].run_date}, newest right"
    lines: list[Line] = [[(title, None)]]
    hidden = min(asked, len(grid.nights)) - len(nights)
    if hidden > 0:
        lines.append([(f"({hidden} older did not fit in {width} columns; --json has all)", None)])
    lines += [
        [(pad + "".join(f"{n.run_date.day:02d}"[0] for n in nights), None)],
        [(pad + "".join(f"{n.run_date.day:02d}"[1] for n in nights), None)],
    ]
    for app in shown.apps:
        line: Line = [(shorten(app, label).ljust(label) + "  ", None)]
        for cell in shown.rows[app]:
            if line[-1][1] == cell.state:  # one segment per run of a state
                line[-1] = (line[-1][0] + CHARS[cell.state], cell.state)
            else:
                line.append((CHARS[cell.state], cell.state))
        lines.append(line)
    lines.extend(legend_lines(width))
    return lines


def legend_lines(width: int) -> list[Line]:
    """'legend: . succeeded  F failed ...', wrapped to `width`."""
    lines: list[Line] = []
    line: Line = [("legend:", None)]
    used = len("legend:")
    for state, char, label in legend():
        size = 2 + len(char) + 1 + len(label)
        if used + size > width and len(line) > 1:
            lines.append(line)
            line, used = [("       ", None)], 7
        line += [("  ", None), (char, state), (" " + label, None)]
        used += size
    lines.append(line)
    return lines


def plain(lines: list[Line]) -> str:
    """The lines as plain text, one character per cell."""
    return "\n".join("".join(text for text, _ in line).rstrip() for line in lines)


def print_grid(grid: Grid, asked: int) -> None:
    """Print the grid: coloured on a terminal (unless NO_COLOR), plain otherwise."""
    if not grid.apps:
        click.echo("no backup in these nights" if grid.nights else "no night recorded yet")
        return
    width = terminal_width()
    lines = layout(grid, width, asked)
    if not use_rich():
        click.echo(plain(lines))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    for line in lines:
        text = Text(no_wrap=True, overflow="crop")
        for part, state in line:
            text.append(part, style=STYLES[state] if state else "")
        console.print(text)


def grid_json(grid: Grid) -> dict[str, Any]:
    """The grid for --json: the nights oldest first, each app's states in that order."""
    return {
        "legend": {state: {"char": char, "label": label} for state, char, label in legend()},
        "nights": [{"run_date": n.run_date, "status": n.status} for n in grid.nights],
        "apps": [
            {
                "app_id": app,
                "trouble": any(c.trouble for c in grid.rows[app]),
                "cells": [c.state for c in grid.rows[app]],
                "size_bytes": [c.size_bytes for c in grid.rows[app]],
            }
            for app in grid.apps
        ],
    }
