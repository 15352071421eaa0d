"""The size-anomaly guard: a nightly backup far smaller than the app's usual size.

A dump that suddenly shrinks (a truncated export, the wrong database, a folder whose
mount is gone) still succeeds, but carries a warning: `check` is WARNING for its
night and `prune` keeps the app's older backups while it is the newest one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from backupctl.wording import human_size

# The previous succeeded nightly backups the usual size is the median of, and how
# many there must be before any backup is judged (fewer: no usual size yet).
HISTORY = 7
MIN_HISTORY = 3


def size_warning(size: int, previous: Sequence[int], min_ratio: float) -> str | None:
    """The warning for a backup of `size` stored bytes, given the stored sizes of the
    app's previous succeeded nightly backups (newest first): "12.0 KB, 6% of the usual
    200.0 KB" when it is below `min_ratio` of their median; None when it is not, when
    there are fewer than MIN_HISTORY of them, or when the guard is off (0)."""
    recent = list(previous[:HISTORY])
    if min_ratio <= 0 or len(recent) < MIN_HISTORY:
        return None
    usual = statistics.median(recent)
    if usual <= 0 or size >= min_ratio * usual:
        return None
    share = size / usual * 100
    percent = f"{share:.0f}%" if share >= 1 else "under 1%"
    return f"{human_size(size)}, {percent} of the usual {human_size(round(usual))}"
