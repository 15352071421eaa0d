"""deploy/aws/iam-policy.json allows every AWS call backupctl makes, and no more.

Representative end-to-end flows run the real CLI against moto's server (nightly
direct to S3 with a failed attempt and a retry, verify, orphans, prune, restore,
drill, enqueue and a worker, Object Lock with a versioned delete), each recording
its AWS calls through BACKUPCTL_AWS_CALL_LOG; each call's IAM actions must be
granted by the policy, on the bucket, prefix and queue it names, and each action of
the policy must be one that a call needed (or one listed below, with the reason).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import S3, Setup
from tests.deploy.iam import (
    PLACEHOLDERS,
    POLICY,
    REPO,
    Call,
    Need,
    allows,
    denied,
    load_policy,
    needs,
    read_calls,
)
from tests.e2e.test_queue_cli import make_queue

PREFIX = "fleet/nightly"
NIGHTS = ["2026-11-01", "2026-11-02", "2026-11-03"]
QUEUED, LOCKED = "2026-11-04", "2026-11-05"
REGION = "us-east-1"
KEEP_ONE = {
    "BACKUPCTL_RETENTION_KEEP_DAILY": "1",
    "BACKUPCTL_RETENTION_KEEP_WEEKLY": "0",
    "BACKUPCTL_RETENTION_KEEP_MONTHLY": "0",
}
# Actions the policy grants that no backupctl call needs, and why they are there.
EXTRA = {
    "sqs:GetQueueAttributes": "KEDA's aws-sqs-queue scaler reads the queue's depth with "
    "the workers' role (deploy/kubernetes/scaledobject.yaml, identityOwner: workload)",
}
# What the flows must have made, or the recording proves little.
EXPECTED = {
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "PutObjectTagging",
    "GetObject",
    "HeadObject",
    "ListObjectsV2",
    "ListMultipartUploads",
    "DeleteObject",
    "DeleteObjects",
    "PutObjectRetention",
    "GetObjectLockConfiguration",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
}


def registry(data: Path, mark: Path) -> str:
    flaky = (
        f"import os, sys; print('flaky' * 50); sys.exit(0 if os.path.exists({str(mark)!r}) else 3)"
    )
    return f"""
[[app]]
id = "shop"
kind = "command"
argv = [{json.dumps(sys.executable)}, "-c", "print('shop' * 100)"]

[[app]]
id = "wiki"
kind = "files"
path = "{data}"

[[app]]
id = "flaky"
kind = "command"
argv = [{json.dumps(sys.executable)}, "-c", {json.dumps(flaky)}]
"""


def ok(proc: object, *codes: int) -> None:
    assert hasattr(proc, "returncode")
    out = getattr(proc, "stdout", "") + getattr(proc, "stderr", "")
    assert proc.returncode in (codes or (0,)), out
    assert "Traceback" not in out, out


@pytest.fixture
def recorded(
    setup: Setup, locked_s3: S3, moto_url: str, tmp_path: Path
) -> tuple[list[Call], dict[str, str]]:
    """Run the flows: the calls they made, and the placeholders' values for them."""
    calls_file = tmp_path / "aws-calls.jsonl"
    queue = make_queue(moto_url, fifo=False)
    data, mark = tmp_path / "wiki", tmp_path / "flaky-may-succeed"
    data.mkdir()
    (data / "page.txt").write_text("hello\n")
    setup.write_registry(registry(data, mark))
    setup.env.update(
        locked_s3.env,
        AWS_ENDPOINT_URL_SQS=moto_url,
        BACKUPCTL_STORAGE=f"s3://{locked_s3.bucket}/{PREFIX}",
        BACKUPCTL_QUEUE_URL=queue.url,
        BACKUPCTL_RUN_MAX_ATTEMPTS="2",
        BACKUPCTL_AWS_CALL_LOG=str(calls_file),
    )
    lock = {"BACKUPCTL_S3_OBJECT_LOCK": "GOVERNANCE", "BACKUPCTL_S3_OBJECT_LOCK_DAYS": "1"}
    try:
        # Direct to S3: flaky's attempts fail (their uploads aborted), then a retry.
        ok(setup.cli("run-nightly", "--date", NIGHTS[0]), 1)
        mark.touch()
        ok(setup.cli("retry", "--date", NIGHTS[0]))
        for night in NIGHTS[1:]:
            ok(setup.cli("run-nightly", "--date", night))
        ok(setup.cli("verify", "--all"))
        ok(setup.cli("verify", "--orphans", "--older-than", "0s"))
        ok(setup.cli("prune", **KEEP_ONE))
        ok(setup.cli("restore", "shop", "--date", NIGHTS[-1], "--to", str(tmp_path / "shop.out")))
        ok(setup.cli("drill", "--app", "shop"))
        # Enqueue and a worker; flaky fails again, its message made visible for a retry.
        mark.unlink()
        ok(setup.cli("run-nightly", "--mode", "enqueue", "--date", QUEUED))
        ok(setup.cli("worker", "--once"), 0, 1)
        mark.touch()
        # Object Lock: locked copies; an unlocked orphan deleted by its version; a
        # prune that looks at each lock before deleting.
        ok(setup.cli("run-nightly", "--date", LOCKED, **lock))
        [shop_key] = [k for k in locked_s3.keys() if k.startswith(f"{PREFIX}/shop/{LOCKED}/")]
        orphan = shop_key.replace("-a1.", "-a9.")
        locked_s3.client.put_object(Bucket=locked_s3.bucket, Key=orphan, Body=b"stray")
        ok(setup.cli("verify", "--orphans", "--delete", "--older-than", "0s", **lock))
        ok(setup.cli("prune", **KEEP_ONE, **lock))
    finally:
        queue.client.delete_queue(QueueUrl=queue.url)
    account, name = urlsplit(queue.url).path.strip("/").split("/")
    values = {
        "ACCOUNT_ID": account,
        "REGION": REGION,
        "BUCKET": locked_s3.bucket,
        "PREFIX": PREFIX,
        "QUEUE": name,
    }
    return read_calls(calls_file), values


@pytest.mark.timeout(600)  # some twenty runs of the CLI, on a loaded machine too
def test_the_flows_made_every_kind_of_call_and_the_policy_allows_each_one(
    recorded: tuple[list[Call], dict[str, str]],
) -> None:
    calls, values = recorded
    made = {call.operation for call in calls}
    assert made >= EXPECTED, sorted(EXPECTED - made)
    policy = load_policy(**values)

    refused = denied(policy, calls, REGION)

    assert not refused, "\n".join(
        f"{call.operation} {call.params}: {need.action} on {need.resource}"
        for call, need in refused
    )
    # Nothing broader than needed: every action granted was needed by some call.
    granted = {a for s in policy["Statement"] for a in s["Action"]}
    needed = {need.action for call in calls for need in needs(call, REGION)}
    assert granted - needed == set(EXTRA), sorted(granted - needed)
    assert needed <= granted


def test_the_policy_is_scoped_to_the_bucket_prefix_and_queue() -> None:
    raw = json.loads(POLICY.read_text())
    resources = {}
    for statement in raw["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action and "?" not in action, action
            assert action.split(":")[0] in ("s3", "sqs"), action
        resources[statement["Sid"]] = statement["Resource"]
        if "s3:ListBucket" in statement["Action"]:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["PREFIX/*"]}}
    assert sorted(resources.values()) == [
        "arn:aws:s3:::BUCKET",
        "arn:aws:s3:::BUCKET",
        "arn:aws:s3:::BUCKET/PREFIX/*",
        "arn:aws:sqs:REGION:ACCOUNT_ID:QUEUE",
    ]

    values = {
        "ACCOUNT_ID": "123456789012",
        "REGION": REGION,
        "BUCKET": "acme-backups",
        "PREFIX": "nightly",
        "QUEUE": "backups",
    }
    policy = load_policy(**values)
    inside = "arn:aws:s3:::acme-backups/nightly/shop/2026-11-28/shop.pgdump.zst"
    assert allows(policy, Need("s3:PutObject", inside))
    for resource in (
        "arn:aws:s3:::acme-backups/other/shop.pgdump.zst",
        "arn:aws:s3:::acme-backups/nightly-other/shop.pgdump.zst",
        "arn:aws:s3:::acme-backups/shop.pgdump.zst",
        "arn:aws:s3:::another-bucket/nightly/shop.pgdump.zst",
    ):
        assert not allows(policy, Need("s3:PutObject", resource)), resource
        assert not allows(policy, Need("s3:GetObject", resource)), resource
    bucket = "arn:aws:s3:::acme-backups"
    assert allows(policy, Need("s3:ListBucket", bucket, (("s3:prefix", "nightly/shop/"),)))
    for prefix in ("", "other/", "nightly-other/"):
        assert not allows(policy, Need("s3:ListBucket", bucket, (("s3:prefix", prefix),)))
    queue = "arn:aws:sqs:us-east-1:123456789012:backups"
    assert allows(policy, Need("sqs:ReceiveMessage", queue))
    assert not allows(policy, Need("sqs:ReceiveMessage", queue + "-other"))
    assert not allows(policy, Need("sqs:ReceiveMessage", queue.replace("1234", "9999")))
    for action, resource in (
        ("s3:BypassGovernanceRetention", inside),
        ("s3:PutObjectLegalHold", inside),
        ("s3:PutBucketObjectLockConfiguration", bucket),
        ("s3:PutLifecycleConfiguration", bucket),
        ("s3:DeleteBucket", bucket),
        ("sqs:PurgeQueue", queue),
        ("sqs:DeleteQueue", queue),
    ):
        assert not allows(policy, Need(action, resource)), action


def test_the_readme_names_every_placeholder_of_the_policy() -> None:
    text = POLICY.read_text()
    readme = (REPO / "README.md").read_text()
    deploy = readme[readme.index("## Deploy") :]
    for name in PLACEHOLDERS:
        assert name in text, name
        assert f"`{name}`" in deploy, name
