"""s3:// storage in-process against moto's server over HTTP (and a real faulty proxy)."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import zstandard

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed
from backupctl.kinds.command import CommandKind
from backupctl.pipeline import dump_to_storage
from backupctl.registry import App
from backupctl.storage.s3 import PART_SIZE, S3Options, S3Storage, part_size
from tests.conftest import S3
from tests.s3_fault_proxy import S3FaultProxy

MiB = 1 << 20
KEY = "shop/2026-11-28/shop-2026-11-28-b1-a1.out.zst"


@pytest.fixture(autouse=True)
def _few_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")


@pytest.fixture
def fault_proxy(moto_url: str) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(moto_url) as proxy:
        yield proxy


def storage_for(s3: S3, prefix: str = "nightly", options: S3Options | None = None) -> S3Storage:
    return S3Storage.from_url(f"s3://{s3.bucket}/{prefix}", options)


def write_in_chunks(upload: Any, data: bytes, chunk: int = MiB) -> None:
    for start in range(0, len(data), chunk):
        upload.write(data[start : start + chunk])


def read_all(storage: S3Storage, key: str) -> bytes:
    with storage.open_read(key) as body:
        return body.read()


def test_open_write_publishes_only_on_clean_exit(s3: S3) -> None:
    storage = storage_for(s3)
    with storage.open_write(KEY) as upload:
        upload.write(b"hello ")
        upload.write(b"world")
        assert s3.keys() == []
        assert s3.open_uploads() == [f"nightly/{KEY}"]

    assert s3.keys() == [f"nightly/{KEY}"]
    assert s3.open_uploads() == []
    assert read_all(storage, KEY) == b"hello world"


@pytest.mark.parametrize("size", [100, 17 * MiB], ids=["one-part", "parts-already-sent"])
def test_an_exception_in_the_block_leaves_no_object_and_no_open_upload(s3: S3, size: int) -> None:
    storage = storage_for(s3)
    with pytest.raises(RuntimeError, match="dump broke"), storage.open_write(KEY) as upload:
        write_in_chunks(upload, os.urandom(size))
        raise RuntimeError("dump broke")

    assert s3.keys() == []
    assert s3.open_uploads() == []


def test_a_multipart_object_round_trips_byte_for_byte(s3: S3) -> None:
    data = os.urandom(20 * MiB)
    storage = storage_for(s3)
    with storage.open_write(KEY) as upload:
        write_in_chunks(upload, data, chunk=3 * MiB + 7)

    assert read_all(storage, KEY) == data
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"nightly/{KEY}")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")  # 8 MiB + 8 MiB + 4 MiB
    first = s3.client.head_object(Bucket=s3.bucket, Key=f"nightly/{KEY}", PartNumber=1)
    assert first["ContentLength"] == PART_SIZE


def test_part_sizes_grow_so_ten_thousand_parts_hold_hundreds_of_gigabytes() -> None:
    assert part_size(1) == part_size(1000) == PART_SIZE == 8 * MiB
    assert part_size(1001) == part_size(2000) == 16 * MiB
    assert part_size(2001) == 24 * MiB
    assert part_size(10_000) == 80 * MiB
    assert all(part_size(n) <= part_size(n + 1) for n in range(1, 10_000))
    assert sum(part_size(n) for n in range(1, 10_001)) == 55_000 * PART_SIZE  # ~461 GB


def test_keys_delete_and_discard_attempts(s3: S3) -> None:
    storage = storage_for(s3)
    prefix = "shop/2026-11-28/shop-2026-11-28-b1-a"
    names = [f"{prefix}{n}.out.zst" for n in (1, 2, 3)]
    other = "shop/2026-11-27/shop-2026-11-27-b0-a1.out.zst"
    for name in [*names, other]:
        with storage.open_write(name) as upload:
            upload.write(name.encode())
    # Leftovers a killed process left open, in and outside the prefix; and a key
    # outside the storage's own prefix.
    left = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=f"nightly/{prefix}4.out.zst")
    elsewhere = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=f"nightly/{other}.x")
    s3.client.put_object(Bucket=s3.bucket, Key=f"other/{names[0]}", Body=b"not ours")

    assert sorted(storage.keys("shop/")) == sorted([*names, other])
    assert sorted(storage.keys(prefix)) == names

    storage.delete(names[0])
    storage.delete(names[0])  # a missing key is not an error
    assert sorted(storage.keys(prefix)) == names[1:]

    removed = storage.discard_attempts(prefix, keep=names[2])

    assert sorted(removed) == [names[1], f"{prefix}4.out.zst (unfinished upload)"]
    assert sorted(storage.keys("")) == sorted([names[2], other])
    uploads = s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [elsewhere["UploadId"]]
    assert left["UploadId"] not in [u["UploadId"] for u in uploads]
    assert f"other/{names[0]}" in s3.keys()

    assert storage.discard_attempts(prefix, keep=None) == [names[2]]
    assert list(storage.keys(prefix)) == []


@pytest.mark.parametrize("prefix", ["nightly", "deep/er/prefix", ""])
def test_uri_and_key_for_round_trip(s3: S3, prefix: str) -> None:
    storage = S3Storage.from_url(f"s3://{s3.bucket}/{prefix}/")
    uri = storage.uri(KEY)
    full = f"{prefix}/{KEY}" if prefix else KEY
    assert uri == f"s3://{s3.bucket}/{full}"
    assert storage.key_for(uri) == KEY
    with storage.open_write(KEY) as upload:
        upload.write(b"x")
    assert s3.keys() == [full]
    assert list(storage.keys("")) == [KEY]


def test_from_url_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="needs a bucket"):
        S3Storage.from_url("s3:///prefix")


def test_server_side_encryption_is_requested(s3: S3) -> None:
    storage = storage_for(s3, options=S3Options(sse="AES256"))
    with storage.open_write(KEY) as upload:
        upload.write(b"secret")

    head = s3.client.head_object(Bucket=s3.bucket, Key=f"nightly/{KEY}")
    if "ServerSideEncryption" not in head:
        pytest.skip("moto does not report ServerSideEncryption for multipart objects")
    assert head["ServerSideEncryption"] == "AES256"


def test_the_sha256_tag_is_on_the_object(s3: S3) -> None:
    storage = storage_for(s3)
    digest = hashlib.sha256(b"data").hexdigest()
    with storage.open_write(KEY) as upload:
        upload.write(b"data")
        upload.set_sha256(digest)

    tags = s3.client.get_object_tagging(Bucket=s3.bucket, Key=f"nightly/{KEY}")["TagSet"]
    assert tags == [{"Key": "sha256", "Value": digest}]


def test_dump_to_storage_stores_the_commands_output_compressed_with_its_sha256(
    s3: S3, tmp_path: Path
) -> None:
    source = tmp_path / "dump.bin"
    source.write_bytes(os.urandom(10 * MiB) + b"tail\n" * 1000)
    copy = "import shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), sys.stdout.buffer)"
    app = App(id="shop", kind="command", params={"argv": [sys.executable, "-c", copy, source]})
    storage = storage_for(s3)

    stored = dump_to_storage(CommandKind(), app, storage, KEY, CancelToken())

    data = read_all(storage, KEY)
    assert stored.key == KEY
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert zstandard.ZstdDecompressor().stream_reader(data).read() == source.read_bytes()
    tags = s3.client.get_object_tagging(Bucket=s3.bucket, Key=f"nightly/{KEY}")["TagSet"]
    assert tags == [{"Key": "sha256", "Value": stored.sha256}]


def proxied_storage(s3: S3, proxy: S3FaultProxy) -> S3Storage:
    import boto3
    import botocore.config

    client = boto3.client(
        "s3",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 2}),
    )
    return S3Storage(s3.bucket, "nightly", S3Options(), client=client)


def test_the_proxy_passes_everything_through_when_no_fault_is_set(
    s3: S3, fault_proxy: S3FaultProxy
) -> None:
    storage = proxied_storage(s3, fault_proxy)
    data = os.urandom(17 * MiB)
    with storage.open_write(KEY) as upload:
        write_in_chunks(upload, data)
        upload.set_sha256("abc")

    assert read_all(storage, KEY) == data
    assert storage.client.head_object(Bucket=s3.bucket, Key=f"nightly/{KEY}")[
        "ContentLength"
    ] == len(data)
    assert list(storage.keys("")) == [KEY]
    assert fault_proxy.failed == []


def test_a_failing_upload_part_raises_backup_failed_and_leaves_nothing(
    s3: S3, fault_proxy: S3FaultProxy
) -> None:
    storage = proxied_storage(s3, fault_proxy)
    fault_proxy.fail_parts_from = 2

    with pytest.raises(BackupFailed) as failed, storage.open_write(KEY) as upload:
        write_in_chunks(upload, os.urandom(20 * MiB))

    message = str(failed.value)
    assert f"s3://{s3.bucket}/nightly/{KEY}" in message
    assert "InternalError" in message
    assert fault_proxy.failed, "the fault was never hit"
    failed_parts = {int(parse_qs(urlsplit(r).query)["partNumber"][0]) for r in fault_proxy.failed}
    assert min(failed_parts) == 2, fault_proxy.failed
    assert s3.keys() == []
    assert s3.open_uploads() == []


def test_delete_many_removes_the_keys_in_requests_of_a_thousand(
    s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backupctl.storage.s3 as s3_module

    monkeypatch.setattr(s3_module, "DELETE_BATCH", 2)  # three requests for five keys
    storage = storage_for(s3)
    keys = [f"shop/2026-11-2{d}/shop-2026-11-2{d}-b{d}-a1.out.zst" for d in range(4)]
    for key in [*keys, KEY]:
        with storage.open_write(key) as upload:
            upload.write(b"x")
    calls: list[int] = []
    real = storage.client.delete_objects

    def counted(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Delete"]["Objects"]))
        return real(**kwargs)

    monkeypatch.setattr(storage.client, "delete_objects", counted)

    failed = storage.delete_many([*keys, "shop/2026-11-29/never-written.out.zst"])

    assert failed == {}
    assert calls == [2, 2, 1]
    assert s3.keys() == [f"nightly/{KEY}"]


def test_delete_many_names_every_key_of_a_request_that_failed(s3: S3) -> None:
    storage = S3Storage.from_url(f"s3://{s3.bucket}-no-such-bucket/nightly")

    failed = storage.delete_many([KEY])

    assert list(failed) == [KEY]
    assert "NoSuchBucket" in failed[KEY] and f"s3://{s3.bucket}-no-such-bucket" in failed[KEY]


def test_delete_many_falls_back_to_one_delete_a_key_where_delete_objects_is_refused(
    s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some S3-compatible stores refuse DeleteObjects (its checksum header); moto does
    # not, so the refusal is the one part made up here.
    from botocore.exceptions import ClientError

    storage = storage_for(s3)
    keys = [f"shop/2026-11-2{d}/shop-2026-11-2{d}-b{d}-a1.out.zst" for d in range(3)]
    for key in [*keys, KEY]:
        with storage.open_write(key) as upload:
            upload.write(b"x")

    def refused(**kwargs: Any) -> Any:
        error = {"Error": {"Code": "NotImplemented", "Message": "DeleteObjects"}}
        raise ClientError(error, "DeleteObjects")

    monkeypatch.setattr(storage.client, "delete_objects", refused)

    assert storage.delete_many(keys) == {}
    assert s3.keys() == [f"nightly/{KEY}"]
