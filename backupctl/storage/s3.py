"""s3:// storage: a streaming multipart upload with bounded memory, aborted on any failure."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import urlsplit

from backupctl.errors import BackupFailed
from backupctl.storage.object_lock import (
    ObjectLock,
    ObjectLocked,
    bucket_lock_enabled,
    lock_from_head,
    not_enabled_message,
    says_lock_missing,
)

if TYPE_CHECKING:
    from backupctl.storage import Entry

log = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB; parts grow so 10,000 reach ~440 GB
PARTS_IN_FLIGHT = 4  # memory stays under PART_SIZE * (PARTS_IN_FLIGHT + 1)
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes


@dataclass(frozen=True)
class S3Options:
    """Server-side encryption: None, "AES256" or "aws:kms" (with an optional key id);
    Object Lock: None, or "GOVERNANCE" / "COMPLIANCE" for `object_lock_days` days."""

    sse: str | None = None
    kms_key_id: str | None = None
    object_lock: str | None = None
    object_lock_days: int | None = None

    def retain_until(self, now: datetime) -> datetime | None:
        """Until when an object written at `now` is locked, or None (no lock)."""
        if not self.object_lock or not self.object_lock_days:
            return None
        # Whole seconds: the date is sent twice (see S3Storage.open_write), and a
        # store that kept the first with more precision would see the second as a
        # shortening, which COMPLIANCE refuses.
        return (now + timedelta(days=self.object_lock_days)).replace(microsecond=0)

    def put_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse == "aws:kms" and self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


def s3_client() -> Any:
    """A boto3 S3 client: the standard credential chain, standard retries, and the
    standard endpoint settings (AWS_ENDPOINT_URL_S3 for MinIO or an emulator)."""
    import boto3
    from botocore.config import Config

    from backupctl.awscalls import record_calls

    config = Config(
        retries={"mode": "standard"},  # attempts: AWS_MAX_ATTEMPTS, else boto3's default
        connect_timeout=10,
        read_timeout=120,
    )
    return record_calls(boto3.session.Session().client("s3", config=config))


def part_size(number: int) -> int:
    """Size of part `number` (1-based): 8 MiB for the first 1,000, then 16 MiB, ..."""
    return PART_SIZE * (1 + (number - 1) // 1000)


CHECKSUM = "CRC32"  # S3 wants Content-MD5 or an x-amz-checksum on every locked part


class _MultipartWriter:
    def __init__(
        self, client: Any, bucket: str, key: str, upload_id: str, *, checksum: bool = False
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._upload_id = upload_id
        self._checksum = checksum
        self._buffer = bytearray()
        self._pool = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self._inflight: deque[Future[dict[str, Any]]] = deque()
        self._parts: list[dict[str, Any]] = []
        self.sha256: str | None = None

    def write(self, data: bytes, /) -> int:
        self._buffer += data
        while len(self._buffer) >= part_size(self._next_number()):
            size = part_size(self._next_number())
            with memoryview(self._buffer) as view:  # one copy of the part, not two
                part = bytes(view[:size])
            self._send(part)
            del self._buffer[:size]
        return len(data)

    def set_sha256(self, sha256: str) -> None:
        self.sha256 = sha256

    def _next_number(self) -> int:
        return len(self._parts) + len(self._inflight) + 1

    def _send(self, body: bytes) -> None:
        while len(self._inflight) >= PARTS_IN_FLIGHT:
            self._parts.append(self._inflight.popleft().result())
        number = self._next_number()
        self._inflight.append(self._pool.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        extra = {"ChecksumAlgorithm": CHECKSUM} if self._checksum else {}
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            **extra,
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if self._checksum:  # CompleteMultipartUpload must repeat each part's checksum
            part[f"Checksum{CHECKSUM}"] = response[f"Checksum{CHECKSUM}"]
        return part

    def finish(self) -> list[dict[str, Any]]:
        if self._buffer or not (self._parts or self._inflight):
            self._send(bytes(self._buffer))
            self._buffer.clear()
        while self._inflight:
            self._parts.append(self._inflight.popleft().result())
        return self._parts

    def close(self) -> None:
        for future in self._inflight:
            future.cancel()
        self._pool.shutdown(wait=True)


class S3Storage:
    """Artifacts as objects under s3://bucket/prefix."""

    def __init__(self, bucket: str, prefix: str, options: S3Options, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.options = options
        self._client = client
        self._lock_enabled: bool | None = None  # the bucket's Object Lock, once asked

    @classmethod
    def from_url(cls, url: str, options: S3Options | None = None) -> S3Storage:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"s3:// storage needs a bucket, e.g. s3://bucket/prefix, got {url!r}")
        return cls(parts.netloc, parts.path, options or S3Options())

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            if self.options.object_lock and says_lock_missing(exc):
                message = not_enabled_message(self.bucket, self.options.object_lock)
                raise BackupFailed(message) from None
            raise BackupFailed(f"storage {self.uri(key)}: {exc}") from None

    @contextmanager
    def open_write(self, key: str) -> Iterator[_MultipartWriter]:
        full = self._key(key)
        until = self.options.retain_until(datetime.now(UTC))
        args: dict[str, Any] = {**self.options.put_args()}
        if until is not None:
            self._require_object_lock(key)
            # Real S3 applies these to the completed object; moto drops them, so the
            # retention is set again (to the same date) once the upload completes.
            args.update(
                ObjectLockMode=self.options.object_lock,
                ObjectLockRetainUntilDate=until,
                ChecksumAlgorithm=CHECKSUM,
            )
        with self._errors(key):
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=full, **args)
        upload_id = created["UploadId"]
        writer = _MultipartWriter(
            self.client, self.bucket, full, upload_id, checksum=until is not None
        )
        try:
            with self._errors(key):
                yield writer
                parts = writer.finish()
                done = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            writer.close()
            self._abort(full, upload_id)
            raise
        writer.close()
        if until is not None:
            self._retain(key, done.get("VersionId"), until)
        if writer.sha256:
            self._tag_sha256(full, writer.sha256)

    def _require_object_lock(self, key: str) -> None:
        """Fail the upload, in one line naming the bucket, if the bucket can't lock it."""
        if self._lock_enabled is None:
            with self._errors(key):
                self._lock_enabled = bucket_lock_enabled(self.client, self.bucket)
        if self._lock_enabled is False:
            raise BackupFailed(not_enabled_message(self.bucket, str(self.options.object_lock)))

    def _retain(self, key: str, version: str | None, until: datetime) -> None:
        """Lock the version just written; if that fails, remove it (it is not locked
        yet) and fail the backup: a copy that promises immutability must have it."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        version_arg = {"VersionId": version} if version else {}
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=full, **version_arg)
            held = lock_from_head(head, datetime.now(UTC))
            if held and held.mode == self.options.object_lock and (held.until or until) >= until:
                return  # CreateMultipartUpload's lock took (real S3); moto drops it
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=full,
                Retention={"Mode": self.options.object_lock, "RetainUntilDate": until},
                **version_arg,
            )
        except (BotoCoreError, ClientError) as exc:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=full, **version_arg)
            except (BotoCoreError, ClientError) as gone:  # `verify --orphans` finds it
                log.warning("could not remove unlocked %s: %s", self.uri(key), gone)
            if says_lock_missing(exc):
                self._lock_enabled = False
                raise BackupFailed(
                    not_enabled_message(self.bucket, str(self.options.object_lock))
                ) from None
            raise BackupFailed(f"storage {self.uri(key)}: could not lock it: {exc}") from None

    def _tag_sha256(self, full: str, sha256: str) -> None:
        # Metadata can't be added to a finished multipart object without copying it
        # whole; a tag can. The ledger holds the authoritative sha256, so a store or a
        # policy without tagging costs the tag, not the backup.
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object_tagging(
                Bucket=self.bucket,
                Key=full,
                Tagging={"TagSet": [{"Key": "sha256", "Value": sha256}]},
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not tag s3://%s/%s with its sha256: %s", self.bucket, full, exc)

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except Exception as exc:  # the upload still expires under a lifecycle rule
            log.warning(
                "could not abort the multipart upload of s3://%s/%s: %s", self.bucket, full, exc
            )

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            yield cast(BinaryIO, body)
        finally:
            body.close()

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def key_for(self, uri: str) -> str:
        start = f"s3://{self.bucket}/"
        if uri.startswith(start) and "?" not in uri and "#" not in uri:
            return self._relative(uri[len(start) :].lstrip("/"))  # urlsplit's answer, sliced
        parts = urlsplit(uri)
        return self._relative(parts.path.lstrip("/"))

    def keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                yield self._relative(item["Key"])

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def lock(self, key: str) -> ObjectLock | None:
        if not self.options.object_lock:
            return None  # without [s3] object_lock nothing is asked (nor needs asking)
        head = self._head(self._key(key))
        return None if head is None else lock_from_head(head, datetime.now(UTC))

    def delete(self, key: str) -> None:
        full = self._key(key)
        if not self.options.object_lock:
            # As ever: on a versioned bucket this leaves a delete marker, and the
            # bucket's lifecycle rules decide what becomes of the old version.
            self.client.delete_object(Bucket=self.bucket, Key=full)
            return
        # With Object Lock (so in a versioned bucket) a DeleteObject without a
        # VersionId only adds a delete marker: it "succeeds" on a locked object and
        # frees nothing on an unlocked one. So: look first, then delete the version.
        head = self._head(full)
        if head is None:
            return
        if (lock := lock_from_head(head, datetime.now(UTC))) is not None:
            raise ObjectLocked(self.uri(key), lock)
        version = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
        self.client.delete_object(Bucket=self.bucket, Key=full, **version)

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        failed: dict[str, str] = {}
        if self.options.object_lock:
            # Each version is looked at and deleted by its id (see delete).
            return self._delete_each(keys)
        for start in range(0, len(keys), DELETE_BATCH):
            chunk = keys[start : start + DELETE_BATCH]
            by_full = {self._key(key): key for key in chunk}
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": full} for full in by_full], "Quiet": True},
                )
            except ClientError:
                # A store that refuses DeleteObjects itself (some S3-compatible ones
                # reject its checksum header): one DeleteObject a key, as before.
                failed.update(self._delete_each(chunk))
                continue
            except BotoCoreError as exc:
                failed.update((key, f"storage {self.uri(key)}: {exc}") for key in chunk)
                continue
            # Quiet: the answer lists only the keys that could not be deleted.
            for error in answer.get("Errors", []):
                key = by_full.get(str(error.get("Key")), str(error.get("Key")))
                failed[key] = f"{error.get('Code')}: {error.get('Message')}"
        return failed

    def _delete_each(self, keys: Sequence[str]) -> dict[str, str]:
        """Delete key by key; {key: why} for those that stay. One object's trouble,
        whatever it is, never stops the rest of a prune."""
        failed: dict[str, str] = {}
        for key in keys:
            try:
                self.delete(key)
            except Exception as exc:
                failed[key] = (
                    str(exc)
                    if isinstance(exc, ObjectLocked)
                    else (f"storage {self.uri(key)}: {exc}")
                )
        return failed

    def discard_attempts(self, prefix: str, keep: str | None) -> list[str]:
        removed = []
        for key in [key for key in list(self.keys(prefix)) if key != keep]:
            try:
                self.delete(key)
            except ObjectLocked as locked:  # stays until its lock ends; then an orphan
                log.warning("kept %s; `prune` removes it once the lock ends", locked)
                continue
            removed.append(key)
        # Uploads a killed process left open are leftovers too.
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for upload in page.get("Uploads", []):
                self._abort(upload["Key"], upload["UploadId"])
                removed.append(self._relative(upload["Key"]) + " (unfinished upload)")
        return removed

    def entries(self) -> Iterator[Entry]:
        from backupctl.storage import Entry

        start = self._key("") if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        ):
            for item in page.get("Contents", []):
                yield Entry(self._relative(item["Key"]), item["LastModified"])
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=start
        ):
            for upload in page.get("Uploads", []):
                yield Entry(self._relative(upload["Key"]), upload["Initiated"], upload["UploadId"])

    def remove(self, entry: Entry) -> None:
        if entry.upload_id is not None:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(entry.key), UploadId=entry.upload_id
            )
        else:
            self.delete(entry.key)
