"""`runs --grid` and `report --html` through the real CLI on a real ledger: the plain
grid on a pipe, colours on a terminal, --last, --app, a missed night's column; the
page parsed (every app and night, the right cells, no script, no URL, errors
redacted) and rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scripts.chromium import INSTALL, find_chromium, screenshot
from scripts.png import read_png
from tests.conftest import Setup
from tests.e2e.test_mistakes_cli import ONE_TRY
from tests.tools import missing

NIGHTS = ["2026-11-20", "2026-11-21", "2026-11-23", "2026-11-24"]  # 11-22: missed
SECRET = "Hunter2Secret"
RAW_SECRET = "Sup3rSecretPw"
CONNECT = f"could not connect to postgresql://shop:{SECRET}@db.internal/shop"
FLEET = f"""
[[app]]
id = "cmd-a"
kind = "command"
argv = ["{sys.executable}", "-c", "print('a' * 100)"]

[[app]]
id = "cmd-b"
kind = "command"
argv = ["{sys.executable}", "-c", "print('b' * 200)"]

[[app]]
id = "shop-db"
kind = "command"
argv = ["{sys.executable}", "-c", "print('shop' * 50)"]
"""
BROKEN = f"""
[[app]]
id = "broken"
kind = "command"
argv = ["{sys.executable}", "-c", "import sys; sys.stderr.write({CONNECT!r}); sys.exit(2)"]
"""


def four_nights(setup: Setup) -> None:
    """cmd-a, cmd-b, shop-db every night; broken (whose error names a password) joins
    on the third night and fails; nobody runs 2026-11-22 (missed)."""
    setup.write_registry(FLEET)
    for night in NIGHTS[:2]:
        assert setup.cli("run-nightly", "--date", night, **ONE_TRY).returncode == 0
    setup.write_registry(FLEET + BROKEN)
    for night in NIGHTS[2:]:
        assert setup.cli("run-nightly", "--date", night, **ONE_TRY).returncode == 1
    # A row written before errors were redacted (or by hand): the page redacts it too.
    setup.query(
        "UPDATE backupctl.backups SET error = %s WHERE app_id = 'broken' AND run_date = %s",
        f"pg_dump: password={RAW_SECRET} rejected",
        NIGHTS[2],
    )


def grid_lines(text: str) -> dict[str, str]:
    """app -> its cells, from plain grid output."""
    found = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z0-9][a-z0-9._-]*)\s{2,}([.WFRsM-]+)", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def test_a_piped_grid_is_one_character_per_cell_trouble_first_with_a_legend(
    setup: Setup,
) -> None:
    four_nights(setup)
    result = setup.cli("runs", "--grid")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0] == "5 nights, 2026-11-20 to 2026-11-24, newest right"
    assert lines[1] == "         22222"  # "shop-db" and 2 spaces, then the nights
    assert lines[2] == "         01234"
    # broken failed last night: first; the missed night is a column of its own.
    assert list(grid_lines(out).items()) == [
        ("broken", "--MFF"),
        ("cmd-a", "..M.."),
        ("cmd-b", "..M.."),
        ("shop-db", "..M.."),
    ]
    legend = " ".join(lines[7:])
    assert legend.startswith("legend:")
    for words in (
        ". succeeded",
        "W succeeded with a warning",
        "F failed",
        "R running or waiting to run",
        "s skipped (left the registry)",
        "- not planned that night",
        "M missed night (no run recorded)",
    ):
        assert words in legend
    assert all(len(line) <= 80 for line in lines)


def test_grid_last_app_and_json(setup: Setup) -> None:
    four_nights(setup)
    last = setup.cli("runs", "--grid", "--last", "2")
    assert grid_lines(last.stdout) == {
        "broken": "FF",
        "cmd-a": "..",
        "cmd-b": "..",
        "shop-db": "..",
    }
    assert last.stdout.splitlines()[0] == "2 nights, 2026-11-23 to 2026-11-24, newest right"

    shops = setup.cli("runs", "--grid", "--app", "shop-*")
    assert grid_lines(shops.stdout) == {"shop-db": "..M.."}
    either = setup.cli("runs", "--grid", "--app", "cmd-[ab]", "--last", "3")
    assert grid_lines(either.stdout) == {"cmd-a": "M..", "cmd-b": "M.."}

    nothing = setup.cli("runs", "--grid", "--app", "shpo*")
    assert nothing.returncode == 2
    assert nothing.stderr == (
        "backupctl: error: runs --grid: no app matches --app 'shpo*' in the last 5 nights "
        "(the apps of 2026-11-24: broken, cmd-a, cmd-b, shop-db)\n"
    )
    alone = setup.cli("runs", "--app", "shop-*")
    assert alone.returncode == 2 and "--app needs --grid" in alone.stderr

    doc = json.loads(setup.cli("runs", "--grid", "--json").stdout)
    assert doc["schema_version"] == 1 and doc["kind"] == "runs-grid"
    assert [n["run_date"] for n in doc["nights"]] == [*NIGHTS[:2], "2026-11-22", *NIGHTS[2:]]
    assert doc["nights"][2]["status"] == "missed"
    assert doc["apps"][0] == {
        "app_id": "broken",
        "trouble": True,
        "cells": ["not planned", "not planned", "missed", "failed", "failed"],
        "size_bytes": [None, None, None, None, None],
    }
    assert doc["legend"]["failed"] == {"char": "F", "label": "failed"}


def test_a_grid_on_an_empty_ledger_says_so(setup: Setup) -> None:
    setup.write_registry(FLEET)
    result = setup.cli("runs", "--grid")
    assert result.returncode == 0
    assert result.stdout == "no night recorded yet: run `backupctl run-nightly` first\n"


def on_terminal(setup: Setup, *args: str, **env: str) -> str:
    """Run the CLI with its stdout on a pseudo-terminal 80 columns wide; what it wrote."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backupctl", *args],
        env={**setup.env, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "40", **env},
        stdout=child,
        stderr=subprocess.PIPE,
        cwd=setup.root,
    )
    os.close(child)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return out.decode()


def test_on_a_terminal_cells_are_coloured_unless_no_color(setup: Setup) -> None:
    four_nights(setup)
    coloured = on_terminal(setup, "runs", "--grid")
    assert "\x1b[" in coloured
    assert re.search(r"\x1b\[[0-9;]*41m", coloured)  # a red background: the failed cells
    plain_text = re.sub(r"\x1b\[[0-9;]*m", "", coloured).replace("\r\n", "\n")
    assert grid_lines(plain_text)["broken"] == "--MFF"

    no_color = on_terminal(setup, "runs", "--grid", NO_COLOR="1")
    assert "\x1b[" not in no_color
    assert grid_lines(no_color.replace("\r\n", "\n"))["cmd-a"] == "..M.."


class Page(HTMLParser):
    """What a test checks in the page: every tag and attribute, the grid's nights and
    cells, and all of its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.nights: list[str] = []
        self.cells: dict[str, list[tuple[str, str, str]]] = {}  # app -> (class, title, char)
        self.text: list[str] = []
        self._in_grid = False
        self._row: str | None = None
        self._cell: list[str] | None = None
        self._row_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table" and a.get("class") == "grid":
            self._in_grid = True
        if not self._in_grid:
            return
        if tag == "th" and a.get("data-night"):
            self.nights.append(str(a["data-night"]))
        elif tag == "th" and a.get("scope") == "row":
            self._row, self._row_head = str(a["title"]), True
            self.cells[self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell = [str(a.get("class")), str(a.get("title")), ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_grid = False
        elif tag == "td" and self._cell is not None and self._row is not None:
            self.cells[self._row].append((self._cell[0], self._cell[1], self._cell[2]))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell[2] += data


def parse(path: Path) -> tuple[str, Page]:
    raw = path.read_text("utf-8")
    page = Page()
    page.feed(raw)
    page.close()
    return raw, page


def test_the_report_page_holds_every_app_and_night_the_right_cells_and_no_secret(
    setup: Setup,
) -> None:
    four_nights(setup)
    out = setup.root / "web" / "index.html"
    out.parent.mkdir()
    result = setup.cli("-v", "report", "--html", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}: 4 apps, 5 nights, ")
    raw, page = parse(out)

    # Self-contained: no script, nothing fetched, no URL at all; a phone and a printer.
    assert "<script" not in raw.lower()
    assert not re.search(r"(?i)https?://", raw)
    assert not re.search(r"(?i)\b(src|href)=", raw)
    assert not re.search(r"(?i)@import|url\(", raw)
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in (
        page.tags
    )
    assert "@media print" in raw
    assert any(tag == "svg" for tag, _ in page.tags)  # the sparklines

    assert page.nights == [*NIGHTS[:2], "2026-11-22", *NIGHTS[2:]]
    assert list(page.cells) == ["broken", "cmd-a", "cmd-b", "shop-db"]
    assert ["".join(c for _, _, c in cells) for cells in page.cells.values()] == [
        "--MFF",
        "..M..",
        "..M..",
        "..M..",
    ]
    classes = [cls for cls, _, _ in page.cells["broken"]]
    assert classes == ["not-planned", "not-planned", "missed", "failed", "failed"]
    failed_tip = page.cells["broken"][4][1].splitlines()
    assert failed_tip[:3] == ["broken", "2026-11-24", "failed"]
    assert failed_tip[5] == (
        "error: command exited with status 2: "
        "could not connect to postgresql://shop:***@db.internal/shop"
    )
    assert page.cells["broken"][3][1].splitlines()[5] == "error: pg_dump: password=*** rejected"
    ok_tip = page.cells["cmd-a"][0][1].splitlines()
    assert ok_tip[:3] == ["cmd-a", "2026-11-20", "succeeded"] and ok_tip[3].startswith("size ")

    text = " ".join(page.text)
    assert SECRET not in raw and RAW_SECRET not in raw
    assert "Night 2026-11-24: 1 failed" in text
    assert "Latest failures and warnings" in text
    assert text.count("could not connect to postgresql://shop:***@db.internal/shop") == 1


def test_the_report_is_replaced_whole_and_a_missing_folder_is_an_error(setup: Setup) -> None:
    four_nights(setup)
    out = setup.root / "report.html"
    out.write_text("the old page")
    assert setup.cli("report", "--html", str(out), "--last", "2").returncode == 0
    _, page = parse(out)
    assert page.nights == NIGHTS[2:]
    assert [p.name for p in setup.root.iterdir() if p.name.startswith(".report")] == []
    assert out.stat().st_mode & 0o777 == 0o644  # a web server reads it

    shop = setup.cli("report", "--html", str(out), "--app", "shop-*")  # cron: silent
    assert shop.returncode == 0 and shop.stdout == ""
    assert list(parse(out)[1].cells) == ["shop-db"]

    gone = setup.root / "nowhere" / "index.html"
    result = setup.cli("report", "--html", str(gone))
    assert result.returncode == 2
    assert result.stderr == (
        f"backupctl: error: report: the folder {gone.parent} does not exist: create it, "
        "or write the page somewhere else\n"
    )


@pytest.mark.timeout(600)
def test_the_report_renders_in_headless_chromium_to_a_page_that_is_not_blank(
    setup: Setup, tmp_path: Path
) -> None:
    if find_chromium() is None:
        missing("the program 'chromium'", INSTALL)
    four_nights(setup)
    page = setup.root / "report.html"
    assert setup.cli("report", "--html", str(page)).returncode == 0
    for width, height in ((1000, 900), (390, 844)):  # a desk, a phone
        png = tmp_path / f"report-{width}.png"
        screenshot(page, png, width=width, height=height)
        image = read_png(png)
        assert (image.width, image.height) == (width, height)
        assert len(image.colours()) > 50, "a page of too few colours: blank?"
        assert image.share_not_white() > 0.05
        colours = image.colours()
        # The banner and failed cells' red, the missed night's purple (CSS --fail, --miss).
        assert any(c[:3] == bytes((0xC6, 0x28, 0x28)) for c in colours)
        if width == 1000:
            assert any(c[:3] == bytes((0x6A, 0x1B, 0x9A)) for c in colours)
