"""Which HeadObject answers mean "locked", and how a lock is worded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backupctl.storage.object_lock import ObjectLock, lock_from_head
from backupctl.storage.s3 import S3Options

NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def test_a_retention_ahead_is_a_lock_and_one_past_is_not() -> None:
    ahead = NOW + timedelta(days=30)
    head = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": ahead}
    assert lock_from_head(head, NOW) == ObjectLock("COMPLIANCE", ahead)
    assert lock_from_head(head, ahead) is None
    assert lock_from_head({}, NOW) is None
    assert lock_from_head({"ObjectLockRetainUntilDate": ahead}, NOW) is None


def test_a_legal_hold_locks_with_no_end() -> None:
    head = {"ObjectLockLegalHoldStatus": "ON"}
    assert lock_from_head(head, NOW) == ObjectLock("legal hold", None)
    assert lock_from_head({"ObjectLockLegalHoldStatus": "OFF"}, NOW) is None


def test_the_wording() -> None:
    until = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert ObjectLock("COMPLIANCE", until).describe() == "locked until 2026-12-01 (COMPLIANCE)"
    assert ObjectLock("legal hold", None).describe() == "under a legal hold"


def test_retain_until_needs_both_settings() -> None:
    assert S3Options().retain_until(NOW) is None
    options = S3Options(object_lock="GOVERNANCE", object_lock_days=30)
    assert options.retain_until(NOW) == NOW + timedelta(days=30)
