"""The grid's model (cells, trouble first, the fit to a terminal's width), its plain
layout, and the page's pieces (tooltips, sparklines, escaping)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from backupctl.cli.grid_render import layout, plain
from backupctl.grid import (
    CHARS,
    FAILED,
    GAP,
    LABEL_MAX,
    MISSED,
    NOT_PLANNED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    WARNING,
    Grid,
    Night,
    build_grid,
    fit,
    label_width,
    legend,
    nights_that_fit,
    widest_fit,
)
from backupctl.report import render, sparkline, text, tooltip

D0 = date(2026, 11, 1)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def row(app: str, n: int, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {
        "app_id": app,
        "run_date": day(n),
        "status": status,
        "size_bytes": extra.get("size_bytes", 1000 + n),
        "duration_s": extra.get("duration_s", 2.5),
        "warned": extra.get("warned", False),
        "note": extra.get("note"),
    }


def nights(count: int, missed: tuple[int, ...] = ()) -> list[Night]:
    return [Night(day(n), "missed" if n in missed else "complete") for n in range(count)]


def states(grid: Grid, app: str) -> str:
    return "".join(CHARS[c.state] for c in grid.rows[app])


def test_each_backup_status_becomes_its_cell_and_a_night_without_a_row_not_planned() -> None:
    rows = [
        row("a", 0),
        row("a", 1, "pruned"),
        row("a", 2, "succeeded", warned=True),
        row("a", 3, "failed"),
        row("a", 4, "enqueued"),
        row("a", 5, "skipped"),
        row("b", 6, "running"),
    ]
    grid = build_grid(nights(8), rows)
    assert states(grid, "a") == ".." + "WFRs--"
    assert states(grid, "b") == "------R-"
    assert grid.rows["a"][1].status == "pruned"  # the tooltip still says so


def test_rows_of_states_alone_share_one_cell_per_status() -> None:
    bare = [{"app_id": a, "run_date": day(0), "status": "succeeded", "warned": False} for a in "xy"]
    bare.append({"app_id": "z", "run_date": day(0), "status": "succeeded", "warned": True})
    grid = build_grid(nights(1), bare)
    assert grid.rows["x"][0] is grid.rows["y"][0]  # what the terminal reads: no size, no note
    assert grid.rows["x"][0].size_bytes is None and grid.rows["z"][0].state == WARNING


def test_a_missed_night_is_a_column_of_its_own_for_every_app() -> None:
    grid = build_grid(nights(4, missed=(2,)), [row("a", n) for n in (0, 1, 3)] + [row("b", 3)])
    assert states(grid, "a") == "..M."
    assert states(grid, "b") == "--M."
    assert [c.state for c in grid.column(2)] == [MISSED, MISSED]


def test_nights_come_oldest_first_whatever_order_the_ledger_gives() -> None:
    grid = build_grid(list(reversed(nights(3))), [row("a", 0, "failed"), row("a", 2)])
    assert [n.run_date for n in grid.nights] == [day(0), day(1), day(2)]
    assert states(grid, "a") == "F-."


def test_rows_of_nights_not_asked_for_are_left_out() -> None:
    grid = build_grid(nights(2), [row("a", 0), row("a", 5, "failed"), row("late", 9)])
    assert list(grid.apps) == ["a"] and states(grid, "a") == ".-"


def test_apps_with_trouble_sort_first_latest_failure_then_earlier_then_warnings() -> None:
    rows = [
        row(app, n)
        for app in ("ok-a", "ok-b", "fixed", "warned", "broken", "flaky")
        for n in range(4)
    ]
    rows += [
        row("fixed", 1, "failed"),
        row("warned", 2, warned=True),
        row("broken", 3, "failed"),
        row("flaky", 0, "failed"),
        row("flaky", 2, "failed"),
        row("flaky", 3, "failed"),
    ]
    grid = build_grid(nights(4), rows)
    # broken and flaky failed last night (flaky more often), fixed failed before.
    assert list(grid.apps) == ["flaky", "broken", "fixed", "warned", "ok-a", "ok-b"]


def test_the_latest_state_that_counts_skips_missed_and_unplanned_nights() -> None:
    rows = [row("a", 0), row("a", 1, "failed"), row("b", 0, "failed"), row("b", 1)]
    grid = build_grid(nights(3, missed=(2,)), rows)
    assert list(grid.apps) == ["a", "b"]  # a's latest real night failed; b recovered


def test_a_pattern_keeps_only_the_apps_whose_id_matches_the_glob() -> None:
    rows = [row(app, 0) for app in ("shop-eu", "shop-us", "shopping", "wiki")]
    assert build_grid(nights(1), rows, "shop-*").apps == ("shop-eu", "shop-us")
    assert build_grid(nights(1), rows, "shop?eu").apps == ("shop-eu",)
    assert build_grid(nights(1), rows, "[sw]*i*").apps == ("shopping", "wiki")
    assert build_grid(nights(1), rows, "Shop-*").apps == ()  # case matters: ids are lowercase


def test_newest_cuts_to_the_latest_nights_and_sorts_again_for_them() -> None:
    rows = [row("a", 0, "failed"), row("a", 1), row("a", 2), row("b", 0), row("b", 1)]
    rows.append(row("b", 2, warned=True))
    grid = build_grid(nights(3), rows)
    assert grid.apps == ("a", "b")  # a failed once
    newest = grid.newest(2)
    assert [n.run_date for n in newest.nights] == [day(1), day(2)]
    assert newest.apps == ("b", "a")  # within these two nights, only b has trouble
    assert states(newest, "a") == ".."
    assert grid.newest(10) is grid


def test_counts_and_trouble_of_a_night() -> None:
    rows = [row("a", 0, "failed", note="boom"), row("b", 0, warned=True), row("c", 0)]
    rows += [row("a", 1), row("c", 1, "running")]
    grid = build_grid(nights(2), rows)
    assert grid.counts(0)[FAILED] == 1 and grid.counts(0)[WARNING] == 1
    assert grid.counts(1) == {
        SUCCEEDED: 1,
        WARNING: 0,
        FAILED: 0,
        RUNNING: 1,
        SKIPPED: 0,
        NOT_PLANNED: 1,
        MISSED: 0,
    }
    assert [(n.run_date, app) for n, app, _ in grid.trouble()] == [(day(0), "a"), (day(0), "b")]


def test_the_legend_names_every_state_once_with_its_own_character() -> None:
    found = legend()
    assert [s for s, _, _ in found] == [
        SUCCEEDED,
        WARNING,
        FAILED,
        RUNNING,
        SKIPPED,
        NOT_PLANNED,
        MISSED,
    ]
    chars = [c for _, c, _ in found]
    assert len(set(chars)) == len(chars) and all(len(c) == 1 for c in chars)


@pytest.mark.parametrize(
    ("width", "label", "nights", "shown"),
    [
        (80, 12, 30, 30),  # all fit
        (80, 12, 100, 80 - 12 - GAP),  # the newest that fit
        (40, 20, 100, 40 - 20 - GAP),
        (10, 20, 5, 1),  # never none
    ],
)
def test_nights_that_fit_in_a_width(width: int, label: int, nights: int, shown: int) -> None:
    assert nights_that_fit(width, label, nights) == shown


def test_the_app_column_is_the_longest_id_within_limits() -> None:
    assert label_width(["a", "shop"], 80) == 4
    assert label_width(["x" * 100], 200) == LABEL_MAX
    assert label_width(["x" * 100], 60) == 20  # a third of the width, room for nights
    assert label_width([], 80) == 3
    assert widest_fit(80) == 80 - 3 - GAP


def test_the_plain_grid_fits_80_columns_by_showing_the_newest_nights() -> None:
    ran = [n for n in range(100) if n != 97]
    rows = [row(app, n) for app in ("shop", "wiki-uploads") for n in ran]
    rows.append(row("shop", 99, "failed"))
    rows.append(row("wiki-uploads", 0, "failed"))  # too old to be shown
    grid = build_grid(nights(100, missed=(97,)), rows)
    shown, label = fit(grid, 80)
    assert label == len("wiki-uploads")
    assert len(shown.nights) == 80 - label - GAP
    lines = plain(layout(grid, 80, 100)).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0] == (
        f"{len(shown.nights)} nights, {shown.nights[0].run_date} to 2027-02-08, newest right"
    )
    assert lines[1] == "(34 older did not fit in 80 columns; --json has all)"
    pad = " " * (label + GAP)
    days = [n.run_date.day for n in shown.nights]
    assert lines[2] == pad + "".join(f"{d:02d}"[0] for d in days)
    assert lines[3] == pad + "".join(f"{d:02d}"[1] for d in days)
    # Trouble first: shop failed in the newest night; wiki-uploads' failure is cut off.
    assert lines[4] == "shop".ljust(label) + "  " + "." * 63 + "M.F"
    assert lines[5] == "wiki-uploads  " + "." * 63 + "M.."
    legend_text = " ".join(lines[6:])
    for _, char, label_text in legend():
        assert f"{char} {label_text}" in legend_text


def test_a_long_app_id_is_cut_with_an_ellipsis_in_the_terminal() -> None:
    app = "a-very-long-application-identifier-for-billing"
    grid = build_grid(nights(3), [row(app, n) for n in range(3)])
    assert plain(layout(grid, 120, 3)).splitlines()[3] == app[: LABEL_MAX - 1] + "…  ..."
    assert plain(layout(grid, 80, 3)).splitlines()[3] == app[:25] + "…  ..."  # 80 // 3 wide


def test_a_tooltip_says_app_night_status_size_duration_and_the_redacted_error() -> None:
    grid = build_grid(
        nights(1),
        [row("shop", 0, "failed", note="pg_dump: postgresql://shop:hunter2pw@db/shop refused")],
    )
    tip = tooltip("shop", grid.nights[0], grid.rows["shop"][0])
    assert tip.splitlines()[:5] == ["shop", "2026-11-01", "failed", "size 1.0 KB", "duration 2.5s"]
    assert "hunter2pw" not in tip and "postgresql://shop:***@db/shop" in tip
    missed = build_grid(nights(2, missed=(1,)), [row("shop", 0)])
    assert tooltip("shop", missed.nights[1], missed.rows["shop"][1]).splitlines() == [
        "shop",
        "2026-11-02",
        "missed night (no run recorded)",
    ]


def test_page_text_is_escaped_and_names_no_url() -> None:
    assert (
        text('<script>alert("x")</script>') == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    )
    assert (
        text("GET https://bucket.example/key failed") == "GET https[:]//bucket.example/key failed"
    )
    assert text("HTTP://x, ftp://y, s3://z") == "HTTP[:]//x, ftp[:]//y, s3://z"


def test_a_sparkline_is_scaled_broken_at_gaps_and_a_dot_for_a_lone_night() -> None:
    svg = sparkline([100, 200, None, 150, None, None, 300])
    assert svg.startswith('<svg class="spark"') and svg.endswith("</svg>")
    assert svg.count("M") == 1 and svg.count("<circle") == 2  # 100-200, then 150 and 300 alone
    assert "100 B to 300 B" in svg
    assert sparkline([None, None]) == ""
    assert "M0.0 9.0 L" in sparkline([5, 5, 5])  # a flat line in the middle


def test_a_page_has_no_script_no_url_and_every_app_and_night() -> None:
    rows = [row("shop", n) for n in range(3)] + [row("wiki", 0, "failed", note="<b>bad</b>")]
    page = render(build_grid(nights(4, missed=(3,)), rows), datetime(2026, 12, 1, tzinfo=UTC))
    assert "<script" not in page.lower() and "http" not in page
    assert "&lt;b&gt;bad&lt;/b&gt;" in page
    for n in range(4):
        assert f'data-night="{day(n)}"' in page
    assert page.count('scope="row"') == 2
