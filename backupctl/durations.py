"""Durations ("90s", "5m", "2h", "1d", "1h30m") and backup windows ("01:00-06:00")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse a duration such as "2h", "5m", "1h30m" or "45s" into seconds."""
    text = text.strip().lower()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{text!r} is not a duration (try 90s, 5m, 2h or 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """Format seconds for humans: 0.4s, 12s, 3m05s, 2h01m."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


@dataclass(frozen=True)
class Window:
    """A daily backup window in wall-clock time; it may cross midnight."""

    start: time
    end: time  # time(0, 0) as the end means midnight, i.e. the end of the day

    @property
    def whole_day(self) -> bool:
        return self.start == self.end

    def __str__(self) -> str:
        end = "24:00" if self.end == time(0) else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


WHOLE_DAY = Window(time(0), time(0))


def _parse_clock(text: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24 and minute == 0:
        return time(0)
    if hour > 23 or minute > 59:
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    return time(hour, minute)


def parse_window(text: str) -> Window:
    """Parse "HH:MM-HH:MM" into a Window; "00:00-24:00" is the whole day."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"{text!r} is not a window (try 01:00-06:00)")
    return Window(_parse_clock(start), _parse_clock(end))
