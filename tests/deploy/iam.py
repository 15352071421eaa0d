"""deploy/aws/iam-policy.json against the AWS calls backupctl makes.

Each call recorded by backupctl (backupctl/awscalls.py, BACKUPCTL_AWS_CALL_LOG) maps
to the IAM actions it needs, on the resource it names, as the Service Authorization
Reference for S3 and SQS says; a small evaluator of the policy's Allow statements
(the only kind it has) tells whether the policy grants them.

Also a command, to check the calls of a whole test run (see tests/conftest.py,
BACKUPCTL_TEST_AWS_CALL_LOG):  python -m tests.deploy.iam CALLS.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "deploy" / "aws" / "iam-policy.json"
PLACEHOLDERS = ("ACCOUNT_ID", "REGION", "BUCKET", "PREFIX", "QUEUE")


@dataclass(frozen=True)
class Need:
    """One IAM action on one resource, with the request's condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Call:
    """One AWS operation as backupctl recorded it."""

    service: str
    operation: str
    params: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_line(cls, line: str) -> Call:
        data = json.loads(line)
        service, operation = data.pop("service"), data.pop("operation")
        return cls(service, operation, {k: str(v) for k, v in data.items()})


def read_calls(path: Path) -> list[Call]:
    """The calls of a BACKUPCTL_AWS_CALL_LOG file."""
    if not path.exists():
        return []
    return [Call.from_line(line) for line in path.read_text().splitlines() if line.strip()]


# S3 operations on an object, and the action each needs (with a VersionId: the
# *Version action). HeadObject is GetObject's; the lock headers it answers with are
# GetObjectRetention's and GetObjectLegalHold's (backupctl heads only to see a lock).
_S3_OBJECT: dict[str, tuple[str, ...]] = {
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "PutObject": ("s3:PutObject",),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload",),
    "PutObjectTagging": ("s3:PutObjectTagging",),
    "PutObjectRetention": ("s3:PutObjectRetention",),
    "GetObjectRetention": ("s3:GetObjectRetention",),
    "GetObject": ("s3:GetObject",),
    "HeadObject": ("s3:GetObject", "s3:GetObjectRetention", "s3:GetObjectLegalHold"),
    "DeleteObject": ("s3:DeleteObject",),
}
_S3_VERSIONED = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
}
_S3_BUCKET = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
}
# SQS: the batch forms need the single action.
_SQS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
}


class UnknownCall(Exception):
    """A call this module does not know the IAM actions of: extend the tables above."""


def needs(call: Call, region: str) -> list[Need]:
    """The IAM actions `call` needs, on its resource (region: of the SQS queue)."""
    p = call.params
    if call.service == "s3":
        if call.operation in _S3_BUCKET:
            context = (("s3:prefix", p.get("Prefix", "")),) if "List" in call.operation else ()
            if call.operation == "ListMultipartUploads":
                context = ()  # S3 has no prefix condition for this listing
            return [Need(_S3_BUCKET[call.operation], f"arn:aws:s3:::{p['Bucket']}", context)]
        if call.operation == "DeleteObjects":
            # As a DeleteObject (or DeleteObjectVersion) of each key it names.
            return [
                Need(
                    _S3_VERSIONED["s3:DeleteObject"] if "VersionId" in o else "s3:DeleteObject",
                    f"arn:aws:s3:::{p['Bucket']}/{o['Key']}",
                )
                for o in json.loads(p["Objects"])
            ]
        if call.operation in _S3_OBJECT:
            resource = f"arn:aws:s3:::{p['Bucket']}/{p['Key']}"
            actions = list(_S3_OBJECT[call.operation])
            if "VersionId" in p:
                actions = [_S3_VERSIONED.get(a, a) for a in actions]
            if call.operation == "CreateMultipartUpload" and "ObjectLockMode" in p:
                actions.append("s3:PutObjectRetention")  # a lock asked for on upload
            return [Need(a, resource) for a in actions]
    if call.service == "sqs" and call.operation in _SQS:
        account, name = urlsplit(p["QueueUrl"]).path.strip("/").split("/")
        return [Need(_SQS[call.operation], f"arn:aws:sqs:{region}:{account}:{name}")]
    raise UnknownCall(f"{call.service} {call.operation}: which IAM actions does it need?")


def _like(pattern: str, value: str) -> bool:
    """IAM's wildcard match (ARNs and StringLike): * any run of characters, ? one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _conditions_hold(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, keys in condition.items():
        for key, allowed in keys.items():
            if key not in context:
                return False
            if operator == "StringLike":
                ok = any(_like(a, context[key]) for a in _listed(allowed))
            elif operator == "StringEquals":
                ok = context[key] in _listed(allowed)
            else:
                raise UnknownCall(f"condition operator {operator} is not evaluated here")
            if not ok:
                return False
    return True


def allows(policy: dict[str, Any], need: Need) -> bool:
    """Whether an Allow statement of `policy` grants `need` (no Deny in it)."""
    context = dict(need.context)
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", "the evaluator knows only Allow statements"
        if need.action not in _listed(statement["Action"]):
            continue
        if not any(_like(r, need.resource) for r in _listed(statement["Resource"])):
            continue
        if _conditions_hold(statement.get("Condition", {}), context):
            return True
    return False


def load_policy(**values: str) -> dict[str, Any]:
    """The policy with its placeholders replaced (each of PLACEHOLDERS must be given)."""
    text = POLICY.read_text()
    assert set(values) == set(PLACEHOLDERS), sorted(values)
    # Longest first: ACCOUNT_ID before a shorter name it might contain.
    for name in sorted(values, key=len, reverse=True):
        text = text.replace(name, values[name])
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def denied(policy: dict[str, Any], calls: list[Call], region: str) -> list[tuple[Call, Need]]:
    """Each call the policy does not allow, with the action it lacks."""
    return [
        (call, need) for call in calls for need in needs(call, region) if not allows(policy, need)
    ]


def main(argv: list[str]) -> int:
    """Check the calls of a log: their actions, whatever bucket, prefix or queue they
    name (every placeholder a wildcard; a storage at a bucket's root shows up as a
    ListObjectsV2 the prefix condition refuses)."""
    calls = read_calls(Path(argv[0]))
    policy = load_policy(**dict.fromkeys(PLACEHOLDERS, "*"))
    problems = sorted(
        {f"{call.operation}: {need.action}" for call, need in denied(policy, calls, "*")}
    )
    for problem in problems:
        print(problem)
    print(f"{len(calls)} calls, {len(problems)} kinds not allowed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
