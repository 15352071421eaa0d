"""Which night it is: the calendar date, in one timezone, on which its window opens."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from backupctl.errors import UsageError

if TYPE_CHECKING:  # only annotations: callers pass them in (zoneinfo is slow to import)
    from zoneinfo import ZoneInfo

    from backupctl.durations import Window


def _local(day: date, clock: time, tz: ZoneInfo) -> datetime:
    # A wall-clock time inside a DST gap resolves with the offset before the jump
    # (fold=0), which lands just after the gap: the window still opens that night.
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


def window_bounds(night: date, window: Window, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the UTC instants at which `night`'s window opens and closes."""
    start = _local(night, window.start, tz)
    crosses_midnight = window.whole_day or window.end <= window.start
    end = _local(night + timedelta(days=int(crosses_midnight)), window.end, tz)
    if end <= start:
        # Both ends fell into (or around) a DST gap: keep the window's nominal length.
        nominal = datetime.combine(night + timedelta(days=int(crosses_midnight)), window.end)
        end = start + (nominal - datetime.combine(night, window.start))
    return start, end


def night_for(now: datetime, window: Window, tz: ZoneInfo) -> date | None:
    """Return the night whose window contains `now`, or None outside every window."""
    now = now.astimezone(UTC)
    today = now.astimezone(tz).date()
    for night in (today - timedelta(days=1), today):
        start, end = window_bounds(night, window, tz)
        if start <= now < end:
            return night
    return None


def next_window_opens(now: datetime, window: Window, tz: ZoneInfo) -> datetime:
    """Return the next instant (UTC) at which a window opens after `now`."""
    now = now.astimezone(UTC)
    today = now.astimezone(tz).date()
    for offset in range(3):
        start, _ = window_bounds(today + timedelta(days=offset), window, tz)
        if start > now:
            return start
    raise AssertionError("a daily window opens within three days")


def resolve_night(
    explicit: date | None, now: datetime, window: Window, tz: ZoneInfo
) -> tuple[date | None, datetime | None]:
    """Which night to run and until when new backups may be claimed.

    An explicit date is the operator's call: no window applies. Otherwise the
    night is the one whose window is open now (None outside every window), and
    claiming stops when that window closes.
    """
    if explicit is not None:
        if explicit > now.astimezone(tz).date() + timedelta(days=1):
            # It would also record every night up to it as missed.
            raise UsageError(f"--date {explicit} is in the future")
        return explicit, None
    night = night_for(now, window, tz)
    if night is None:
        return None, None
    return night, window_bounds(night, window, tz)[1]
