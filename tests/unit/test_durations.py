"""Durations ("90s", "1h30m") and daily backup windows ("01:00-06:00")."""

from __future__ import annotations

from datetime import time

import pytest

from backupctl.durations import WHOLE_DAY, Window, format_duration, parse_duration, parse_window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        (" 2H ", 7200.0),
    ],
)
def test_parse_duration_reads_units_and_combinations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("", ""),
        ("90", "90"),
        ("forever", "forever"),
        ("5 m", "5 m"),
        ("-5m", "-5m"),
        ("1h30", "1h30"),
        ("h", "h"),
        ("2w", "2w"),
        ("1h 30m", "1h 30m"),
    ],
)
def test_parse_duration_rejects_bad_input_with_a_hint(text: str, shown: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(text)

    assert str(excinfo.value) == f"{shown!r} is not a duration (try 90s, 5m, 2h or 1h30m)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.0s"),
        (0.4, "0.4s"),
        (9.94, "9.9s"),
        (12.0, "12s"),
        (59.4, "59s"),
        (60.0, "1m00s"),
        (185.0, "3m05s"),
        (3599.0, "59m59s"),
        (3600.0, "1h00m"),
        (7260.0, "2h01m"),
        (90000.0, "25h00m"),
    ],
)
def test_format_duration_is_short_and_human(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_parse_window_reads_start_and_end() -> None:
    window = parse_window("01:00-06:00")

    assert window == Window(time(1), time(6))
    assert not window.whole_day
    assert str(window) == "01:00-06:00"


def test_parse_window_00_to_24_is_the_whole_day() -> None:
    window = parse_window("00:00-24:00")

    assert window == WHOLE_DAY
    assert window.whole_day
    assert str(window) == "00:00-24:00"


def test_parse_window_may_cross_midnight() -> None:
    window = parse_window("22:00-04:00")

    assert window == Window(time(22), time(4))
    assert not window.whole_day
    assert str(window) == "22:00-04:00"


def test_parse_window_ending_at_24_00_ends_at_midnight() -> None:
    window = parse_window("22:00-24:00")

    assert window == Window(time(22), time(0))
    assert str(window) == "22:00-24:00"


def test_parse_window_accepts_single_digit_hours() -> None:
    assert parse_window("1:00-6:30") == Window(time(1), time(6, 30))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("01:00", "'01:00' is not a window (try 01:00-06:00)"),
        ("", "'' is not a window (try 01:00-06:00)"),
        ("25:00-06:00", "'25:00' is not a time of day (HH:MM)"),
        ("01:00-06:60", "'06:60' is not a time of day (HH:MM)"),
        ("1-6", "'1' is not a time of day (HH:MM)"),
        ("01:00-24:30", "'24:30' is not a time of day (HH:MM)"),
        ("01:00-06:00-07:00", "'06:00-07:00' is not a time of day (HH:MM)"),
        ("one-six", "'one' is not a time of day (HH:MM)"),
    ],
)
def test_parse_window_rejects_invalid_windows(text: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_window(text)

    assert str(excinfo.value) == message
