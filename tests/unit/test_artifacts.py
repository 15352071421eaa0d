"""Artifact keys: <app>/<run_date>/<app>-<date>-b<id>-a<attempt>.<ext>.zst, adhoc apart."""

from __future__ import annotations

from datetime import date

from backupctl.artifacts import artifact_key, attempt_prefix, attempts_up_to
from backupctl.ledger import Claim


def claim(trigger: str = "nightly", backup_id: int = 17, attempt: int = 1) -> Claim:
    return Claim(
        id=backup_id, app_id="shop", run_date=date(2026, 11, 29), attempt=attempt, trigger=trigger
    )


def test_nightly_artifact_key_carries_app_date_backup_id_and_attempt() -> None:
    assert artifact_key(claim(), "tar") == "shop/2026-11-29/shop-2026-11-29-b17-a1.tar.zst"


def test_adhoc_artifact_key_lives_under_adhoc() -> None:
    assert artifact_key(claim("adhoc"), "out") == "shop/adhoc/shop-2026-11-29-b17-a1.out.zst"


def test_each_attempt_gets_its_own_key_under_one_prefix() -> None:
    first = artifact_key(claim(attempt=1), "tar")
    second = artifact_key(claim(attempt=2), "tar")

    assert first != second
    assert attempt_prefix(claim()) == "shop/2026-11-29/shop-2026-11-29-b17-a"
    assert first.startswith(attempt_prefix(claim()))
    assert second.startswith(attempt_prefix(claim(attempt=2)))


def test_the_attempt_prefix_of_one_backup_does_not_match_another_backups_keys() -> None:
    assert not artifact_key(claim(backup_id=170), "tar").startswith(attempt_prefix(claim()))
    assert not artifact_key(claim(backup_id=1), "tar").startswith(
        attempt_prefix(claim(backup_id=17))
    )


def test_adhoc_attempt_prefix_is_under_adhoc() -> None:
    assert attempt_prefix(claim("adhoc", backup_id=5)) == "shop/adhoc/shop-2026-11-29-b5-a"


def test_leftovers_are_looked_for_in_this_and_earlier_attempts_only() -> None:
    assert attempts_up_to(claim(attempt=3)) == [
        "shop/2026-11-29/shop-2026-11-29-b17-a1.",
        "shop/2026-11-29/shop-2026-11-29-b17-a2.",
        "shop/2026-11-29/shop-2026-11-29-b17-a3.",
    ]
    # The trailing dot keeps attempt 1 from matching attempt 10's keys.
    assert not artifact_key(claim(attempt=10), "out").startswith(attempts_up_to(claim())[0])
