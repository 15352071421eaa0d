"""S3 Object Lock in-process against moto's server over HTTP: uploads carry the
retention, locked versions refuse deletes, and a bucket without Object Lock fails the
first upload in one line."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from backupctl.errors import BackupFailed
from backupctl.storage.object_lock import ObjectLocked
from backupctl.storage.s3 import S3Options, S3Storage
from tests.conftest import S3

MiB = 1 << 20
KEY = "shop/2026-11-28/shop-2026-11-28-b1-a1.out.zst"


def locked_storage(s3: S3, mode: str = "COMPLIANCE", days: int = 30) -> S3Storage:
    options = S3Options(object_lock=mode, object_lock_days=days)
    return S3Storage.from_url(f"s3://{s3.bucket}/nightly", options)


def versions(s3: S3) -> tuple[list[str], list[str]]:
    """(object versions, delete markers) in the bucket, by key."""
    found = s3.client.list_object_versions(Bucket=s3.bucket)
    return (
        sorted(v["Key"] for v in found.get("Versions", [])),
        sorted(m["Key"] for m in found.get("DeleteMarkers", [])),
    )


def assert_locked_for(head: dict[str, object], mode: str, days: int) -> None:
    assert head["ObjectLockMode"] == mode
    until = head["ObjectLockRetainUntilDate"]
    assert isinstance(until, datetime)
    expected = datetime.now(UTC) + timedelta(days=days)
    assert abs(until - expected) < timedelta(days=1), until


@pytest.mark.parametrize(
    ("mode", "size"), [("COMPLIANCE", 20 * MiB), ("GOVERNANCE", 100)], ids=["multipart", "small"]
)
def test_an_upload_is_locked_and_its_version_refuses_a_delete(
    locked_s3: S3, mode: str, size: int
) -> None:
    storage = locked_storage(locked_s3, mode, days=30)
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    with storage.open_write(KEY) as upload:
        for start in range(0, size, 3 * MiB):
            upload.write(data[start : start + 3 * MiB])
        upload.set_sha256(digest)

    full = f"nightly/{KEY}"
    head = locked_s3.client.head_object(Bucket=locked_s3.bucket, Key=full)
    assert_locked_for(head, mode, days=30)
    assert head["ContentLength"] == size
    with pytest.raises(ClientError, match="AccessDenied"):
        locked_s3.client.delete_object(
            Bucket=locked_s3.bucket, Key=full, VersionId=head["VersionId"]
        )
    tags = locked_s3.client.get_object_tagging(Bucket=locked_s3.bucket, Key=full)["TagSet"]
    assert tags == [{"Key": "sha256", "Value": digest}]
    with storage.open_read(KEY) as body:
        assert body.read() == data


def test_delete_of_a_locked_object_says_until_when_and_leaves_no_delete_marker(
    locked_s3: S3,
) -> None:
    storage = locked_storage(locked_s3, "COMPLIANCE", days=7)
    with storage.open_write(KEY) as upload:
        upload.write(b"kept")

    lock = storage.lock(KEY)
    assert lock is not None and lock.mode == "COMPLIANCE" and lock.until is not None
    with pytest.raises(ObjectLocked) as refused:
        storage.delete(KEY)

    until = f"{lock.until:%Y-%m-%d}"
    assert str(refused.value) == f"{storage.uri(KEY)}: locked until {until} (COMPLIANCE)"
    # A plain DeleteObject would have hidden it behind a delete marker and "succeeded".
    assert versions(locked_s3) == ([f"nightly/{KEY}"], [])
    assert list(storage.keys("")) == [KEY]
    assert storage.lock("shop/no-such-key") is None


def test_once_the_lock_ends_delete_removes_the_version_itself(locked_s3: S3) -> None:
    storage = locked_storage(locked_s3)
    full = f"nightly/{KEY}"
    soon = datetime.now(UTC) + timedelta(seconds=5)  # moto keeps whole seconds
    locked_s3.client.put_object(
        Bucket=locked_s3.bucket,
        Key=full,
        Body=b"x",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=soon,
    )
    assert storage.lock(KEY) is not None
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 1)

    assert storage.lock(KEY) is None
    storage.delete(KEY)

    assert versions(locked_s3) == ([], [])


def test_discard_attempts_keeps_a_locked_leftover_and_removes_the_rest(locked_s3: S3) -> None:
    storage = locked_storage(locked_s3)
    prefix = "shop/2026-11-28/shop-2026-11-28-b1-a"
    with storage.open_write(f"{prefix}1.out.zst") as upload:  # locked
        upload.write(b"one")
    locked_s3.client.put_object(  # unlocked
        Bucket=locked_s3.bucket, Key=f"nightly/{prefix}2.out.zst", Body=b"two"
    )

    removed = storage.discard_attempts(prefix, keep=None)

    assert removed == [f"{prefix}2.out.zst"]
    assert versions(locked_s3) == ([f"nightly/{prefix}1.out.zst"], [])


def test_a_bucket_without_object_lock_fails_the_first_upload_naming_the_bucket(s3: S3) -> None:
    storage = locked_storage(s3, "GOVERNANCE")

    for _ in range(2):  # the answer is remembered, and the same
        with pytest.raises(BackupFailed) as failed, storage.open_write(KEY) as upload:
            upload.write(b"never stored")
        message = str(failed.value)
        assert message == (
            f"storage s3://{s3.bucket}: bucket {s3.bucket!r} does not have Object Lock enabled, "
            "which [s3] object_lock = 'GOVERNANCE' needs (create the bucket with Object Lock "
            "enabled, or enable versioning and Object Lock on it)"
        )
    assert s3.keys() == []
    assert s3.open_uploads() == []


def test_without_object_lock_settings_nothing_is_locked(locked_s3: S3) -> None:
    storage = S3Storage.from_url(f"s3://{locked_s3.bucket}/nightly", S3Options())
    with storage.open_write(KEY) as upload:
        upload.write(b"plain")

    assert storage.lock(KEY) is None
    storage.delete(KEY)
    # A plain delete, as without Object Lock ever: the version stays behind a delete
    # marker, for the bucket's lifecycle rules (a noncurrent-version safety net).
    kept, markers = versions(locked_s3)
    assert len(kept) == 1 and len(markers) == 1


def test_delete_many_removes_unlocked_versions_and_names_the_locked_ones(locked_s3: S3) -> None:
    plain = S3Storage.from_url(f"s3://{locked_s3.bucket}/nightly", S3Options())
    other = "wiki/2026-11-28/wiki-2026-11-28-b2-a1.out.zst"
    with locked_storage(locked_s3).open_write(KEY) as upload:
        upload.write(b"locked")
    with plain.open_write(other) as upload:
        upload.write(b"not locked")

    failed = locked_storage(locked_s3).delete_many([KEY, other])

    assert list(failed) == [KEY]
    assert "locked" in failed[KEY]
    # The unlocked version itself is gone (no delete marker), the locked one stays.
    assert versions(locked_s3) == ([f"nightly/{KEY}"], [])
