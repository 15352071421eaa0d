"""Which nights a retention policy keeps."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from backupctl.retention import check_policy, nights_to_keep, protected_apps

START = date(2026, 1, 1)
EVERY_NIGHT = [START + timedelta(days=n) for n in range(120)]  # 2026-01-01 .. 2026-04-30


def test_daily_keeps_the_newest_nights() -> None:
    assert nights_to_keep(EVERY_NIGHT, 3, 0, 0) == {
        date(2026, 4, 30),
        date(2026, 4, 29),
        date(2026, 4, 28),
    }


def test_weekly_keeps_the_newest_night_of_each_of_the_newest_weeks() -> None:
    kept = nights_to_keep(EVERY_NIGHT, 1, 3, 0)
    # 2026-04-30 is a Thursday; the weeks before end on Sundays 04-26 and 04-19.
    assert kept == {date(2026, 4, 30), date(2026, 4, 26), date(2026, 4, 19)}


def test_monthly_keeps_the_newest_night_of_each_of_the_newest_months() -> None:
    kept = nights_to_keep(EVERY_NIGHT, 1, 0, 4)
    assert kept == {date(2026, 4, 30), date(2026, 3, 31), date(2026, 2, 28), date(2026, 1, 31)}


def test_periods_count_nights_that_exist_and_gaps_are_skipped() -> None:
    sparse = [date(2026, 1, 5), date(2026, 3, 2), date(2026, 3, 20)]
    assert nights_to_keep(sparse, 0, 0, 2) == {date(2026, 3, 20), date(2026, 1, 5)}


def test_the_newest_night_is_always_kept_and_an_empty_policy_is_refused() -> None:
    assert nights_to_keep(EVERY_NIGHT, 0, 0, 0) == {date(2026, 4, 30)}
    assert check_policy({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}) is not None
    assert check_policy({"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}) is None


def test_an_app_whose_newest_backup_carries_a_warning_is_protected() -> None:
    warned = {"run_date": date(2026, 4, 30), "warning": "12.0 KB, 6% of the usual 200.0 KB"}
    fine = {"run_date": date(2026, 4, 29), "warning": None}
    by_app: dict[str, list[dict[str, Any]]] = {
        "shop": [warned, fine],
        "wiki": [fine, warned],
        "crm": [],
    }

    assert protected_apps(by_app) == {
        "shop": "its newest nightly backup (2026-04-30) is far smaller than usual: "
        "12.0 KB, 6% of the usual 200.0 KB"
    }
