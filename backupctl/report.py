"""The HTML report: one self-contained page of the latest nights.

Inline CSS and SVG only: no script, no font, image or style from elsewhere, and no
http(s):// URL anywhere in it (an error that names one is shown defanged, https[:]//...), so a page
in a web root fetches nothing and works offline. Every text from the ledger is
escaped; every error and warning goes through backupctl.redact first.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from backupctl.durations import format_duration
from backupctl.grid import (
    CHARS,
    FAILED,
    LABELS,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    WARNING,
    Cell,
    Grid,
    Night,
    legend,
)
from backupctl.redact import redact_text
from backupctl.wording import human_size, one_line, plural

# The failures and warnings listed in full (the grid's tooltips have the rest).
TROUBLE_LIMIT = 50
# A sparkline's height, and its width: so many pixels a night, within limits.
SPARK_H, SPARK_STEP, SPARK_MIN, SPARK_MAX = 18, 5, 60, 240

# What a browser could fetch (or a reader's tool could): shown as https[:]//host.
_URL = re.compile(r"(?i)\b(https?|ftp|wss?):(//)")

CSS = """
:root { --ok: #2e7d32; --warn: #f9a825; --fail: #c62828; --run: #0277bd; --skip: #78909c;
        --none: #eceff1; --miss: #6a1b9a; --line: #cfd8dc; }
* { box-sizing: border-box; }
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #111; background: #fff; margin: 0 auto; max-width: 80rem; padding: 1rem; }
h1 { font-size: 1.35rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.75rem 0 .5rem; border-bottom: 1px solid var(--line); }
.meta { color: #555; margin: 0 0 1rem; font-size: .9rem; }
.verdict { padding: .8rem 1rem; border-radius: .5rem; font-size: 1.3rem; font-weight: 700;
           color: #fff; margin: 0 0 .75rem; }
.verdict.good { background: var(--ok); }
.verdict.warn { background: var(--warn); color: #111; }
.verdict.bad { background: var(--fail); }
.verdict.busy { background: var(--run); }
ul.counts { display: flex; flex-wrap: wrap; gap: .5rem; list-style: none; padding: 0; margin: 0; }
ul.counts li { border: 1px solid var(--line); border-radius: .4rem; padding: .25rem .6rem; }
ul.counts b { font-size: 1.1rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
/* The grid opens scrolled to its right end: the newest nights show first on a phone. */
.scroll.newest { direction: rtl; width: fit-content; max-width: 100%; }
.scroll.newest table { direction: ltr; }
table { border-collapse: collapse; }
table.grid { font: 11px/1 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
table.grid th.app { position: sticky; left: 0; background: #fff; text-align: left;
                    font-weight: 600; padding: 0 .5rem 0 0; white-space: nowrap;
                    max-width: 16rem; overflow: hidden; text-overflow: ellipsis; }
table.grid thead th { font-weight: 400; color: #555; padding: 0 0 .25rem; }
table.grid thead th.missed { color: #fff; font-weight: 700; }
table.grid td { width: 1.15rem; min-width: 1.15rem; height: 1.35rem; text-align: center;
                border: 1px solid #fff; padding: 0; }
.succeeded { background: var(--ok); color: #fff; }
.warning { background: var(--warn); color: #111; font-weight: 700; }
.failed { background: var(--fail); color: #fff; font-weight: 700; }
.running { background: var(--run); color: #fff; }
.skipped { background: var(--skip); color: #fff; }
.not-planned { background: var(--none); color: #90a4ae; }
.missed { background: var(--miss); color: #fff; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .35rem 1rem;
            font-size: .9rem; }
ul.legend span { display: inline-block; width: 1.2rem; text-align: center;
                 font: 11px/1.35rem ui-monospace, monospace; margin-right: .3rem; }
ol.trouble { padding-left: 1.4rem; }
ol.trouble li { margin: 0 0 .6rem; }
.tag { display: inline-block; padding: 0 .4rem; border-radius: .25rem; font-size: .85rem; }
code, .error { font: .9rem/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
               overflow-wrap: anywhere; }
.error { display: block; background: #fafafa; border-left: 3px solid var(--line);
         padding: .25rem .5rem; margin-top: .2rem; white-space: pre-wrap; }
table.list th { white-space: nowrap; }
table.list th, table.list td { text-align: left; padding: .2rem .6rem .2rem 0;
                               border-bottom: 1px solid var(--line); vertical-align: top; }
table.list td.num { text-align: right; white-space: nowrap; }
svg.spark { display: block; color: #37474f; }
.none { color: #555; }
@media (max-width: 40rem) {
  body { padding: .6rem; font-size: 17px; }
  .verdict { font-size: 1.2rem; }
  table.grid th.app { max-width: 9rem; }
}
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  .scroll { overflow: visible; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; }
  ol.trouble li, tr { break-inside: avoid; }
  table.grid th.app { position: static; }
}
"""

# State -> CSS class (a state may hold a space; a class may not).
_CLASS = {state: state.replace(" ", "-") for state in CHARS}


def text(value: object) -> str:
    """`value` as safe HTML text: URLs defanged (the page names none), escaped."""
    found = str(value)
    if "//" in found:  # (the page holds a text per cell: skip the regex when it can't match)
        found = _URL.sub(r"\1[:]\2", found)
    return html.escape(found, quote=True)


def shown_note(note: str | None) -> str:
    """An error or warning as the page shows it: redacted, on one line."""
    return one_line(redact_text(note)) if note else ""


def _size(cell: Cell) -> str:
    return human_size(cell.size_bytes) if cell.size_bytes is not None else "-"


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "-"


def tooltip(app: str, night: Night, cell: Cell) -> str:
    """A cell's tooltip: the app, the night (ISO date), status, size, duration and its
    error or warning, redacted; one item a line."""
    return f"{app}\n{night.run_date.isoformat()}\n{_about(cell)}"


def _about(cell: Cell) -> str:
    """The tooltip's lines after the app and the night."""
    status = cell.status if cell.status not in (None, "succeeded") else LABELS[cell.state]
    if cell.state == WARNING:
        status = "succeeded with a warning"
    parts = [str(status)]
    if cell.status is not None:
        parts += [f"size {_size(cell)}", f"duration {_duration(cell.duration_s)}"]
    if cell.note:
        label = "warning" if cell.state in (WARNING, SUCCEEDED) else "error"
        parts.append(f"{label}: {shown_note(cell.note)}")
    return "\n".join(parts)


def _verdict(night: Night, counts: dict[str, int]) -> tuple[str, str]:
    """(class, words) for the latest night's banner."""
    if night.missed:
        return "bad", f"Night {night.run_date} was missed: no run recorded"
    if counts[FAILED]:
        return "bad", f"Night {night.run_date}: {counts[FAILED]} failed"
    if counts[RUNNING]:
        return "busy", f"Night {night.run_date}: {counts[RUNNING]} still running or waiting"
    if counts[WARNING]:
        return "warn", f"Night {night.run_date}: {plural(counts[WARNING], 'warning')}"
    return "good", f"Night {night.run_date}: all {plural(counts[SUCCEEDED], 'backup')} succeeded"


def _summary(grid: Grid, out: list[str]) -> None:
    night = grid.nights[-1]
    counts = grid.counts(len(grid.nights) - 1)
    kind, words = _verdict(night, counts)
    stored = sum(c.size_bytes or 0 for c in grid.column(-1) if c.state in (SUCCEEDED, WARNING))
    out.append(f'<section id="summary"><p class="verdict {kind}">{text(words)}</p>')
    items = [
        (counts[SUCCEEDED] + counts[WARNING], "succeeded"),
        (counts[WARNING], "with a warning"),
        (counts[FAILED], "failed"),
        (counts[RUNNING], "running or waiting"),
        (counts[SKIPPED], "skipped"),
    ]
    out.append('<ul class="counts">')
    out.append(f"<li>night status <b>{text(night.status)}</b></li>")
    out.extend(f"<li><b>{n}</b> {text(label)}</li>" for n, label in items)
    out.append(f"<li><b>{text(human_size(stored))}</b> stored</li>")
    if night.duration_s is not None:
        out.append(f"<li>took <b>{text(format_duration(night.duration_s))}</b></li>")
    drills = f"{night.drills}" + (f" ({night.drills_failed} failed)" if night.drills_failed else "")
    out.append(f"<li><b>{text(drills)}</b> drills</li></ul></section>")


def _trouble(grid: Grid, out: list[str]) -> None:
    found = grid.trouble()
    out.append('<section id="trouble"><h2>Latest failures and warnings</h2>')
    if not found:
        out.append(f'<p class="none">None in these {plural(len(grid.nights), "night")}.</p>')
        out.append("</section>")
        return
    out.append('<ol class="trouble">')
    for night, app, cell in found[:TROUBLE_LIMIT]:
        word = "failed" if cell.state == FAILED else "warning"
        note = shown_note(cell.note) or "(no message recorded)"
        out.append(
            f'<li><b>{text(app)}</b> <span class="tag {_CLASS[cell.state]}">{word}</span> '
            f"{night.run_date.isoformat()}"
            f'<span class="error">{text(note)}</span></li>'
        )
    out.append("</ol>")
    if len(found) > TROUBLE_LIMIT:
        more = len(found) - TROUBLE_LIMIT
        out.append(f'<p class="none">… and {more} more (older): see the grid.</p>')
    out.append("</section>")


def _grid(grid: Grid, out: list[str]) -> None:
    first, last = grid.nights[0].run_date, grid.nights[-1].run_date
    out.append(
        f'<section id="grid"><h2>{len(grid.apps)} apps × {len(grid.nights)} nights, '
        f"{first} to {last}</h2>"
    )
    out.append('<ul class="legend">')
    for state, char, label in legend():
        out.append(f'<li><span class="{_CLASS[state]}">{text(char)}</span>{text(label)}</li>')
    out.append(
        '</ul><div class="scroll newest"><table class="grid"><thead><tr><th class="app">app</th>'
    )
    for night in grid.nights:
        iso = night.run_date.isoformat()
        cls = ' class="missed"' if night.missed else ""
        out.append(
            f'<th{cls} data-night="{iso}" title="{iso}: {text(night.status)}">'
            f"{night.run_date.day:02d}</th>"
        )
    out.append("</tr></thead><tbody>")
    # tooltip(), made of parts escaped once each: the app once a row, the night once.
    isos = [night.run_date.isoformat() for night in grid.nights]
    for app in grid.apps:
        name = text(app)
        out.append(f'<tr><th class="app" scope="row" title="{name}">{name}</th>')
        for iso, cell in zip(isos, grid.rows[app], strict=True):
            out.append(
                f'<td class="{_CLASS[cell.state]}" title="{name}\n{iso}\n{text(_about(cell))}">'
                f"{CHARS[cell.state]}</td>"
            )
        out.append("</tr>")
    out.append("</tbody></table></div></section>")


def sparkline(sizes: Sequence[int | None]) -> str:
    """An inline SVG line of `sizes` (one per night, None: no backup that night),
    scaled from the smallest to the largest; broken where a night has none, and a
    dot for a night alone between gaps."""
    known = [s for s in sizes if s is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    width = max(SPARK_MIN, min(SPARK_MAX, SPARK_STEP * len(sizes)))
    step = width / max(len(sizes) - 1, 1)
    runs: list[list[tuple[float, float]]] = [[]]
    for i, size in enumerate(sizes):
        if size is None:
            runs.append([])
            continue
        y = SPARK_H / 2 if high == low else (SPARK_H - 2) * (high - size) / (high - low) + 1
        runs[-1].append((i * step, y))
    lines = " ".join(
        "M" + " L".join(f"{x:.1f} {y:.1f}" for x, y in run) for run in runs if len(run) > 1
    )
    dots = "".join(
        f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="1.5"/>'
        for run in runs
        if len(run) == 1
    )
    words = f"{human_size(low)} to {human_size(high)}"
    line = f'<path d="{lines}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
    return (
        f'<svg class="spark" width="{width}" height="{SPARK_H}" '
        f'viewBox="-2 0 {width + 4} {SPARK_H}" role="img" aria-label="size {words}">'
        f"<title>{text(words)}</title>"
        + (line if lines else "")
        + f'<g fill="currentColor">{dots}</g></svg>'
    )


def _sizes(grid: Grid, out: list[str]) -> None:
    out.append(
        '<section id="sizes"><h2>Size over time</h2><div class="scroll"><table class="list">'
        "<thead><tr><th>app</th><th>latest</th><th>over the nights</th><th>smallest</th>"
        "<th>largest</th></tr></thead><tbody>"
    )
    for app in sorted(grid.apps):
        sizes = [c.size_bytes if c.state in (SUCCEEDED, WARNING) else None for c in grid.rows[app]]
        known = [s for s in sizes if s is not None]
        latest = next((s for s in reversed(sizes) if s is not None), None)
        out.append(
            f"<tr><th>{text(app)}</th><td class='num'>{text(human_size(latest))}</td>"
            f"<td>{sparkline(sizes)}</td>"
            f"<td class='num'>{text(human_size(min(known)) if known else '-')}</td>"
            f"<td class='num'>{text(human_size(max(known)) if known else '-')}</td></tr>"
        )
    out.append("</tbody></table></div></section>")


def _drills(grid: Grid, out: list[str]) -> None:
    out.append('<section id="drills"><h2>Drills</h2>')
    total = sum(n.drills for n in grid.nights)
    failed = sum(n.drills_failed for n in grid.nights)
    out.append(
        f"<p>{plural(total, 'drill')} of these nights' backups, {failed} failed "
        "(every app's: <code>backupctl drill</code> restores a backup into a scratch "
        "target and checks it).</p>"
    )
    if grid.drills:
        out.append(
            '<div class="scroll"><table class="list"><thead><tr><th>app</th><th>night</th>'
            "<th>drill</th><th>took</th><th>restored</th><th>error</th></tr></thead><tbody>"
        )
        for d in grid.drills:
            restored = d["restored"] or {}
            held = ", ".join(f"{k} {v}" for k, v in restored.items() if k != "note") or "-"
            cls = "failed" if d["status"] == "failed" else "succeeded"
            note = shown_note(d["error"])
            out.append(
                f"<tr><th>{text(d['app_id'])}</th><td>{d['run_date'].isoformat()}</td>"
                f'<td><span class="tag {cls}">{text(d["status"])}</span></td>'
                f"<td class='num'>{text(_duration(d['duration_s']))}</td><td>{text(held)}</td>"
                + (f'<td><span class="error">{text(note)}</span></td>' if note else "<td></td>")
                + "</tr>"
            )
        out.append("</tbody></table></div>")
    out.append("</section>")


def render(grid: Grid, written_at: datetime, pattern: str | None = None) -> str:
    """The whole page of `grid` (apps trouble first, nights oldest first)."""
    title = "backupctl report"
    if grid.nights:
        title += f": night {grid.nights[-1].run_date}"
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{text(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{text(title)}</h1>",
        f'<p class="meta">written {text(written_at.strftime("%Y-%m-%d %H:%M %Z").strip())}'
        + (f" · apps matching <code>{text(pattern)}</code>" if pattern else "")
        + " · <code>backupctl report --html</code></p></header><main>",
    ]
    if not grid.nights:
        out.append('<p class="verdict bad">No night recorded yet.</p>')
    elif not grid.apps:
        out.append('<p class="verdict bad">No backup in these nights.</p>')
    else:
        _summary(grid, out)
        _trouble(grid, out)
        _grid(grid, out)
        _sizes(grid, out)
        _drills(grid, out)
    out.append("</main></body></html>\n")
    return "".join(out)


def write_report(path: Path, grid: Grid, written_at: datetime, pattern: str | None) -> int:
    """Write the page to `path` in one step (a reader sees the old page or the new
    one, never half); return its size in bytes."""
    from backupctl.atomic import write_atomically

    data = render(grid, written_at, pattern).encode("utf-8")
    write_atomically(path, data, mode=0o644)
    return len(data)
