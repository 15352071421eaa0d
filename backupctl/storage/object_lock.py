"""S3 Object Lock: the retention an object carries, and the bucket setting it needs.

A locked object version can't be deleted or overwritten until its retain-until date
(COMPLIANCE: by no one; GOVERNANCE: only with s3:BypassGovernanceRetention, which
backupctl never uses) or while a legal hold is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backupctl.errors import BackupFailed

MODES = ("GOVERNANCE", "COMPLIANCE")
MAX_DAYS = 36_500  # S3 refuses retention beyond 100 years


@dataclass(frozen=True)
class ObjectLock:
    """What keeps an object from being deleted now: a retention mode and its end,
    or a legal hold (no end)."""

    mode: str  # GOVERNANCE, COMPLIANCE or "legal hold"
    until: datetime | None

    def describe(self) -> str:
        """'locked until 2026-12-01 (COMPLIANCE)', or 'under a legal hold'."""
        if self.until is None:
            return "under a legal hold"
        return f"locked until {self.until:%Y-%m-%d} ({self.mode})"


class ObjectLocked(BackupFailed):
    """A delete refused because the object is locked: expected, not a failure."""

    def __init__(self, uri: str, lock: ObjectLock) -> None:
        self.uri = uri
        self.lock = lock
        super().__init__(f"{uri}: {lock.describe()}")


def lock_from_head(head: Mapping[str, Any], now: datetime) -> ObjectLock | None:
    """The lock a HeadObject answer shows as in force at `now`, or None. (moto answers
    GetObjectRetention with a 500; HeadObject carries the same fields.)"""
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        return ObjectLock("legal hold", None)
    until = head.get("ObjectLockRetainUntilDate")
    mode = head.get("ObjectLockMode")
    if isinstance(until, datetime) and mode and until > now:
        return ObjectLock(str(mode), until)
    return None


def not_enabled_message(bucket: str, mode: str) -> str:
    """The one line for a bucket that can't hold locked objects."""
    return (
        f"storage s3://{bucket}: bucket {bucket!r} does not have Object Lock enabled, "
        f"which [s3] object_lock = {mode!r} needs (create the bucket with Object Lock "
        "enabled, or enable versioning and Object Lock on it)"
    )


def says_lock_missing(exc: Exception) -> bool:
    """Whether an S3 error means the bucket has no Object Lock configuration (real S3
    answers a locked CreateMultipartUpload so; moto a PutObjectRetention)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    text = f"{error.get('Code', '')} {error.get('Message', '')}".lower().replace(" ", "")
    return "objectlockconfiguration" in text


def bucket_lock_enabled(client: Any, bucket: str) -> bool | None:
    """Whether `bucket` has Object Lock enabled; None when we may not ask (no
    s3:GetBucketObjectLockConfiguration): then the upload itself will tell."""
    from botocore.exceptions import ClientError

    try:
        config = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError as exc:
        if says_lock_missing(exc):
            return False
        if exc.response.get("Error", {}).get("Code") in ("AccessDenied", "403"):
            return None
        raise
    return bool(config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")
