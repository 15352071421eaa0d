"""Which night a firing belongs to, and when windows open and close (incl. DST changes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from backupctl.durations import WHOLE_DAY, Window, parse_window
from backupctl.nights import next_window_opens, night_for, resolve_night, window_bounds

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UTC_ZONE = ZoneInfo("UTC")
SPRING_FORWARD = date(2026, 3, 29)  # 02:00 CET -> 03:00 CEST, at 01:00 UTC
AUTUMN_BACK = date(2026, 10, 25)  # 03:00 CEST -> 02:00 CET, at 01:00 UTC


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


def simulate_cron(change: date, step: timedelta, window: Window) -> list[date | None]:
    """night_for at every firing from two days before `change` to three days after (UTC)."""
    now = datetime.combine(change - timedelta(days=2), time(0), tzinfo=UTC)
    end = datetime.combine(change + timedelta(days=3), time(0), tzinfo=UTC)
    nights: list[date | None] = []
    while now < end:
        nights.append(night_for(now, window, AMSTERDAM))
        now += step
    return nights


DST_CASES = [
    pytest.param(change, window, step, id=f"{label}-{window}-every-{step_label}")
    for change, label in ((SPRING_FORWARD, "spring-forward"), (AUTUMN_BACK, "autumn-back"))
    for window in ("01:00-06:00", "02:00-03:00", "00:00-24:00", "22:00-04:00")
    for step, step_label in ((timedelta(hours=1), "hour"), (timedelta(minutes=5), "5min"))
]


@pytest.mark.parametrize(("change", "window_text", "step"), DST_CASES)
def test_a_dst_change_date_in_a_european_timezone_gives_one_night_not_zero_or_two(
    change: date, window_text: str, step: timedelta
) -> None:
    nights = simulate_cron(change, step, parse_window(window_text))

    seen = [night for night in nights if night is not None]
    distinct = sorted(set(seen))
    # No date is skipped: the nights seen form an unbroken run of dates around the change.
    assert {change - timedelta(days=1), change, change + timedelta(days=1)} <= set(distinct)
    assert distinct == [
        distinct[0] + timedelta(days=n) for n in range((distinct[-1] - distinct[0]).days + 1)
    ]
    for night in distinct:
        # Each night is one contiguous stretch of firings: the window opens once and closes once.
        indexes = [i for i, value in enumerate(nights) if value == night]
        assert indexes == list(range(indexes[0], indexes[-1] + 1)), night
    # ... and the nights follow one another in calendar order, each exactly once.
    runs = [night for i, night in enumerate(seen) if i == 0 or seen[i - 1] != night]
    assert runs == distinct


def test_a_window_in_the_repeated_autumn_hour_opens_at_the_first_02_00() -> None:
    # 02:00-03:00 happens twice on 2026-10-25; the window opens at the first 02:00 (CEST).
    window = parse_window("02:00-03:00")

    assert window_bounds(AUTUMN_BACK, window, AMSTERDAM) == (
        utc(2026, 10, 25, 0, 0),
        utc(2026, 10, 25, 2, 0),
    )
    assert night_for(utc(2026, 10, 25, 0, 0), window, AMSTERDAM) == AUTUMN_BACK
    assert night_for(utc(2026, 10, 25, 1, 0), window, AMSTERDAM) == AUTUMN_BACK
    assert night_for(utc(2026, 10, 25, 2, 0), window, AMSTERDAM) is None


def test_a_window_in_the_spring_forward_gap_is_not_empty() -> None:
    start, end = window_bounds(SPRING_FORWARD, parse_window("02:00-03:00"), AMSTERDAM)

    assert start < end
    assert night_for(start, parse_window("02:00-03:00"), AMSTERDAM) == SPRING_FORWARD


def test_window_bounds_on_dst_dates_follow_the_wall_clock() -> None:
    window = parse_window("01:00-06:00")

    assert window_bounds(SPRING_FORWARD, window, AMSTERDAM) == (
        utc(2026, 3, 29, 0, 0),  # 01:00 CET
        utc(2026, 3, 29, 4, 0),  # 06:00 CEST: four hours of wall-clock-five
    )
    assert window_bounds(AUTUMN_BACK, window, AMSTERDAM) == (
        utc(2026, 10, 24, 23, 0),  # 01:00 CEST
        utc(2026, 10, 25, 5, 0),  # 06:00 CET: six hours
    )


def test_whole_day_window_on_dst_dates_is_23_and_25_hours_long() -> None:
    spring = window_bounds(SPRING_FORWARD, WHOLE_DAY, AMSTERDAM)
    autumn = window_bounds(AUTUMN_BACK, WHOLE_DAY, AMSTERDAM)

    assert spring == (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0))
    assert autumn == (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0))
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)


def test_window_crossing_midnight_maps_02_00_on_the_15th_to_the_night_of_the_14th() -> None:
    window = parse_window("22:00-04:00")

    assert night_for(local(2026, 1, 15, 2, 0), window, AMSTERDAM) == date(2026, 1, 14)
    assert night_for(local(2026, 1, 14, 22, 0), window, AMSTERDAM) == date(2026, 1, 14)
    assert night_for(local(2026, 1, 14, 23, 59), window, AMSTERDAM) == date(2026, 1, 14)
    assert night_for(local(2026, 1, 15, 4, 0), window, AMSTERDAM) is None
    assert night_for(local(2026, 1, 14, 21, 59), window, AMSTERDAM) is None


def test_window_crossing_midnight_bounds_end_on_the_next_day() -> None:
    window = parse_window("22:00-04:00")

    assert window_bounds(date(2026, 1, 14), window, AMSTERDAM) == (
        utc(2026, 1, 14, 21, 0),
        utc(2026, 1, 15, 3, 0),
    )


def test_window_start_is_inclusive_and_end_exclusive() -> None:
    window = parse_window("01:00-06:00")

    assert night_for(utc(2026, 6, 1, 0, 59, 59), window, UTC_ZONE) is None
    assert night_for(utc(2026, 6, 1, 1, 0), window, UTC_ZONE) == date(2026, 6, 1)
    assert night_for(utc(2026, 6, 1, 5, 59, 59), window, UTC_ZONE) == date(2026, 6, 1)
    assert night_for(utc(2026, 6, 1, 6, 0), window, UTC_ZONE) is None


def test_whole_day_night_is_the_local_calendar_date_not_the_utc_one() -> None:
    # 23:30 UTC on 30 June is 01:30 on 1 July in Amsterdam.
    assert night_for(utc(2026, 6, 30, 23, 30), WHOLE_DAY, AMSTERDAM) == date(2026, 7, 1)
    assert night_for(utc(2026, 6, 30, 23, 30), WHOLE_DAY, UTC_ZONE) == date(2026, 6, 30)


def test_night_for_accepts_any_aware_datetime() -> None:
    window = parse_window("01:00-06:00")
    same_instant = local(2026, 6, 1, 3, 0)

    assert night_for(same_instant, window, AMSTERDAM) == date(2026, 6, 1)
    assert night_for(same_instant.astimezone(UTC), window, AMSTERDAM) == date(2026, 6, 1)


def test_next_window_opens_later_today_when_before_the_window() -> None:
    window = parse_window("01:00-06:00")

    assert next_window_opens(local(2026, 6, 1, 0, 30), window, AMSTERDAM) == utc(2026, 5, 31, 23)


def test_next_window_opens_tomorrow_when_inside_or_after_todays_window() -> None:
    window = parse_window("01:00-06:00")

    assert next_window_opens(local(2026, 6, 1, 1, 0), window, AMSTERDAM) == utc(2026, 6, 1, 23)
    assert next_window_opens(local(2026, 6, 1, 12, 0), window, AMSTERDAM) == utc(2026, 6, 1, 23)


def test_next_window_opens_across_the_spring_forward_change() -> None:
    window = parse_window("01:00-06:00")

    # From Saturday noon (CET) the next opening is 01:00 CET on Sunday = 00:00 UTC.
    assert next_window_opens(local(2026, 3, 28, 12, 0), window, AMSTERDAM) == utc(2026, 3, 29, 0)
    # From Sunday noon (CEST) the next opening is 01:00 CEST on Monday = 23:00 UTC.
    assert next_window_opens(local(2026, 3, 29, 12, 0), window, AMSTERDAM) == utc(2026, 3, 29, 23)


def test_next_window_opens_for_a_window_crossing_midnight() -> None:
    window = parse_window("22:00-04:00")

    assert next_window_opens(local(2026, 1, 15, 2, 0), window, AMSTERDAM) == utc(2026, 1, 15, 21)


def test_resolve_night_with_an_explicit_date_ignores_the_window() -> None:
    window = parse_window("01:00-06:00")

    assert resolve_night(date(2026, 1, 1), utc(2026, 6, 1, 12), window, AMSTERDAM) == (
        date(2026, 1, 1),
        None,
    )


def test_resolve_night_inside_the_window_claims_until_it_closes() -> None:
    window = parse_window("22:00-04:00")

    assert resolve_night(None, local(2026, 1, 15, 2, 0), window, AMSTERDAM) == (
        date(2026, 1, 14),
        utc(2026, 1, 15, 3, 0),
    )


def test_resolve_night_outside_every_window_gives_nothing() -> None:
    window = parse_window("01:00-06:00")

    assert resolve_night(None, local(2026, 1, 15, 12, 0), window, AMSTERDAM) == (None, None)
