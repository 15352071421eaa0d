"""The size guard: a nightly backup far below the median of the app's recent ones."""

from __future__ import annotations

from backupctl.sizeguard import size_warning

USUAL = [200_000, 201_000, 199_000, 200_500, 198_000]


def test_a_backup_far_below_the_usual_size_is_warned_about() -> None:
    assert size_warning(12_000, USUAL, 0.5) == "12.0 KB, 6% of the usual 200.0 KB"


def test_a_backup_above_the_ratio_is_fine() -> None:
    assert size_warning(100_000, USUAL, 0.5) is None
    assert size_warning(99_999, USUAL, 0.5) is not None


def test_fewer_than_three_earlier_backups_are_no_usual_size() -> None:
    assert size_warning(1, USUAL[:2], 0.5) is None
    assert size_warning(1, USUAL[:3], 0.5) == "1 B, under 1% of the usual 200.0 KB"


def test_the_median_of_the_last_seven_is_the_usual_size() -> None:
    # Newest first: the latest seven are small; the large old ones are forgotten.
    previous = [10_000] * 7 + [1_000_000] * 5
    assert size_warning(9_000, previous, 0.5) is None
    # One odd night among them does not move the median.
    assert size_warning(4_000, [10_000, 1, 10_000, 10_000], 0.5) == (
        "4.0 KB, 40% of the usual 10.0 KB"
    )


def test_a_ratio_of_zero_turns_the_guard_off() -> None:
    assert size_warning(1, USUAL, 0.0) is None
