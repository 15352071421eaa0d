"""run-nightly against s3:// storage that fails: the real CLI, moto over HTTP, a real
faulty proxy in between, and a closed port for "unreachable"."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import S3, Setup, free_port
from tests.s3_fault_proxy import S3FaultProxy

NIGHT = "2026-11-28"
BIG = "import os,sys; sys.stdout.buffer.write(os.urandom(20 << 20))"


@pytest.fixture
def fault_proxy(moto_url: str) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(moto_url) as proxy:
        yield proxy


def command_app(app_id: str, code: str, storage: str | None = None) -> str:
    text = f"""
[[app]]
id = "{app_id}"
kind = "command"
argv = [{json.dumps(sys.executable)}, "-c", {json.dumps(code)}]
"""
    return text + (f'storage = "{storage}"\n' if storage else "")


def night_rows(setup: Setup) -> dict[str, tuple[object, ...]]:
    """app_id -> (status, attempts, artifact_uri, sha256, size_bytes, error)."""
    found = setup.query(
        "SELECT app_id, status, attempts, artifact_uri, sha256, size_bytes, error"
        " FROM backupctl.backups WHERE run_date = %s AND trigger = 'nightly'",
        NIGHT,
    )
    return {str(r[0]): r[1:] for r in found}


def objects(s3: S3, prefix: str) -> list[str]:
    return [k for k in s3.keys() if k.startswith(prefix)]


def test_storage_failing_mid_upload_fails_that_app_alone_and_a_rerun_heals_it(
    setup: Setup, s3: S3, fault_proxy: S3FaultProxy
) -> None:
    setup.write_registry(command_app("big", BIG) + command_app("small", "print('hi' * 100)"))
    env = {
        **s3.env,
        "AWS_ENDPOINT_URL_S3": fault_proxy.url,
        "AWS_MAX_ATTEMPTS": "2",
        "BACKUPCTL_STORAGE": f"s3://{s3.bucket}/nightly",
    }
    fault_proxy.fail_parts_from = 2

    first = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1", **env)

    assert first.returncode == 1, first.stdout + first.stderr
    assert fault_proxy.failed, "the fault was never hit"
    assert "Traceback" not in first.stderr
    found = night_rows(setup)
    status, attempts, _uri, _sha, _size, error = found["big"]
    assert (status, attempts) == ("failed", 1)
    assert isinstance(error, str)
    assert f"storage s3://{s3.bucket}/nightly/big/{NIGHT}/" in error
    assert "InternalError" in error and "UploadPart" in error
    assert objects(s3, "nightly/big/") == []
    assert s3.open_uploads() == []
    assert found["small"][:2] == ("succeeded", 1)
    assert len(objects(s3, "nightly/small/")) == 1

    fault_proxy.fail_parts_from = None
    second = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="2", **env)

    assert second.returncode == 0, second.stdout + second.stderr
    status, attempts, uri, sha, size, _error = night_rows(setup)["big"]
    assert (status, attempts) == ("succeeded", 2)
    mine = objects(s3, "nightly/big/")
    assert len(mine) == 1, mine
    assert isinstance(uri, str) and uri == f"s3://{s3.bucket}/{mine[0]}"
    assert uri.endswith("-a2.out.zst")
    data = s3.client.get_object(Bucket=s3.bucket, Key=mine[0])["Body"].read()
    assert hashlib.sha256(data).hexdigest() == sha
    assert len(data) == size
    assert len(data) > 20 << 20  # random bytes don't compress: a three-part upload
    assert s3.open_uploads() == []
    assert len(objects(s3, "nightly/small/")) == 1


def test_s3_unreachable_fails_that_app_alone_with_one_clear_line_and_exit_1(
    setup: Setup, s3: S3
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    setup.write_registry(
        command_app("local-a", "print('a' * 100)")
        + command_app("remote", "print('r' * 100)", storage=f"s3://{s3.bucket}/x")
        + command_app("local-b", "print('b' * 100)")
    )
    env = {**s3.env, "AWS_ENDPOINT_URL_S3": closed, "AWS_MAX_ATTEMPTS": "1"}

    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1", **env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "testing-secret-key" not in result.stdout + result.stderr
    found = night_rows(setup)
    status, attempts, uri, _sha, _size, error = found["remote"]
    assert (status, attempts, uri) == ("failed", 1, None)
    assert isinstance(error, str) and "\n" not in error
    assert error.startswith(f"storage s3://{s3.bucket}/x/remote/{NIGHT}/remote-{NIGHT}-b")
    assert f'Could not connect to the endpoint URL: "{closed}/' in error
    assert "Traceback" not in error
    for app_id in ("local-a", "local-b"):
        assert found[app_id][:2] == ("succeeded", 1)
        assert len([f for f in setup.files() if f.startswith(f"{app_id}/")]) == 1
    assert not [f for f in setup.files() if f.startswith("remote/")]
    failed_line = [line for line in result.stdout.splitlines() if line.startswith("remote ")]
    assert len(failed_line) == 1 and "failed" in failed_line[0], result.stdout
    assert "2 backed up now" in result.stdout and "1 failed" in result.stdout
    assert s3.keys() == []  # the real bucket was never reached

    status_json = setup.cli("status", "--date", NIGHT, "--json", **env)
    assert status_json.returncode == 0, status_json.stderr
    doc = json.loads(status_json.stdout)
    by_app = {b["app_id"]: b for b in doc["backups"]}
    assert by_app["remote"]["status"] == "failed"
    assert by_app["remote"]["error"] == error
    assert by_app["local-a"]["status"] == by_app["local-b"]["status"] == "succeeded"
    assert doc["night"]["failed"] == 1 and doc["night"]["succeeded"] == 2


def test_discarding_a_failed_attempts_leftovers_never_aborts_the_retry_in_flight(
    setup: Setup, s3: S3, fault_proxy: S3FaultProxy
) -> None:
    marker = setup.root / "tried-once"
    # Attempt 1 fails at once; attempt 2 works (slowly enough for the abort to land first).
    code = (
        f"import pathlib, sys, time; p = pathlib.Path({str(marker)!r});"
        " p.exists() or (p.touch(), sys.exit(1));"
        " time.sleep(1); print('ok' * 100)"
    )
    setup.write_registry(command_app("flaky", code))
    # Force the order a slow S3 listing allows: attempt 1's clean-up lists the leftovers
    # only once attempt 2 (claimed by the same run's other slot) has opened its upload.
    fault_proxy.hold_when = lambda line: line.startswith("GET ") and "list-type=2" in line
    fault_proxy.release_when = lambda line: (
        line.startswith("POST ") and "-a2.out.zst?uploads" in line
    )
    env = {
        **s3.env,
        "AWS_ENDPOINT_URL_S3": fault_proxy.url,
        "AWS_MAX_ATTEMPTS": "1",
        "BACKUPCTL_STORAGE": f"s3://{s3.bucket}/nightly",
        "BACKUPCTL_RUN_PARALLEL": "2",
        "BACKUPCTL_RUN_MAX_ATTEMPTS": "2",
    }

    result = setup.cli("run-nightly", "--date", NIGHT, **env)

    assert fault_proxy.released.is_set(), fault_proxy.requests  # attempt 2 did start
    aborted = [r for r in fault_proxy.requests if r.startswith("DELETE ") and "-a2." in r]
    assert aborted == [], "attempt 1's clean-up aborted attempt 2's upload in flight"
    status, attempts, uri, *_ = night_rows(setup)["flaky"]
    assert (result.returncode, status, attempts) == (0, "succeeded", 2), result.stdout
    assert objects(s3, "nightly/flaky/") == [str(uri).removeprefix(f"s3://{s3.bucket}/")]
    assert s3.open_uploads() == []
