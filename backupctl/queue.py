"""The SQS queue: messages name a backup (app id, date, backup id) and nothing else."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from backupctl.errors import EXIT_UNAVAILABLE, BackupctlError
from backupctl.redact import redact_text
from backupctl.registry.model import validate_app_id

log = logging.getLogger(__name__)

MESSAGE_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # SQS's limit
BATCH = 10  # SendMessageBatch's limit


class QueueUnavailable(BackupctlError):
    """The queue cannot be reached (or refuses us)."""

    exit_code = EXIT_UNAVAILABLE


class MessageGone(QueueUnavailable):
    """The receipt no longer names a message in flight: another receiver settled it."""


# What SQS answers (query and JSON protocols) for a receipt of a message no longer ours.
_GONE = frozenset(
    {"ReceiptHandleIsInvalid", "AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight"}
)


def _gone(error: dict[str, Any]) -> bool:
    code, text = str(error.get("Code", "")), str(error.get("Message", "")).lower()
    return code in _GONE or (code == "InvalidParameterValue" and "receipt" in text)


class PoisonMessage(Exception):
    """A message that names no backup this worker may run; it is deleted."""


@dataclass(frozen=True)
class Job:
    """What a message asks for: back up this app for this night, as this backup row."""

    app_id: str
    run_date: date
    backup_id: int
    attempt: int = 1  # the attempt it was sent for (FIFO deduplication only)

    def body(self) -> str:
        """The message body: versioned JSON, references only (never a command or secret)."""
        text = json.dumps(
            {
                "v": MESSAGE_VERSION,
                "app_id": self.app_id,
                "run_date": self.run_date.isoformat(),
                "backup_id": self.backup_id,
            },
            separators=(",", ":"),
        )
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise ValueError(
                f"message for backup {self.backup_id} exceeds {MAX_MESSAGE_BYTES} bytes"
            )
        return text


def parse_job(body: str) -> Job:
    """Read a message body; raise PoisonMessage for anything but a well-formed v1 job."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        raise PoisonMessage("not JSON") from None
    if not isinstance(doc, dict):
        raise PoisonMessage("not a JSON object")
    if doc.get("v") != MESSAGE_VERSION:
        raise PoisonMessage(f"unknown message version {doc.get('v')!r}")
    if set(doc) != {"v", "app_id", "run_date", "backup_id"}:
        raise PoisonMessage(f"unexpected fields {sorted(set(doc))}")
    app_id, run_date, backup_id = doc["app_id"], doc["run_date"], doc["backup_id"]
    if validate_app_id(app_id) is not None:
        raise PoisonMessage("invalid app id")
    if not isinstance(backup_id, int) or isinstance(backup_id, bool) or backup_id < 1:
        raise PoisonMessage("invalid backup id")
    try:
        night = date.fromisoformat(run_date)
    except (TypeError, ValueError):
        raise PoisonMessage("invalid run date") from None
    return Job(app_id, night, backup_id)


@dataclass(frozen=True)
class Received:
    body: str
    receipt: str
    message_id: str


def sqs_client(*, connect_timeout: float = 10, read_timeout: float = 40, attempts: int = 0) -> Any:
    """A boto3 SQS client: credential chain, standard retries, AWS_ENDPOINT_URL_SQS.
    (`attempts` 0: AWS_MAX_ATTEMPTS, else boto3's default.)"""
    import boto3
    from botocore.config import Config

    from backupctl.awscalls import record_calls

    retries: dict[str, Any] = {"mode": "standard"}
    if attempts:
        retries["total_max_attempts"] = attempts
    config = Config(
        retries=retries,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=32,
    )
    return record_calls(boto3.session.Session().client("sqs", config=config))


class SqsQueue:
    """Send, receive, extend and delete on one SQS queue (standard or FIFO)."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self.fifo = url.endswith(".fifo")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = sqs_client()
        return self._client

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = redact_text(str(exc))
            if _gone(exc.response.get("Error", {})):
                raise MessageGone(f"the queue {self.url}: {error}") from None
            raise QueueUnavailable(f"the queue {self.url} is unreachable: {error}") from None
        except BotoCoreError as exc:
            raise QueueUnavailable(
                f"the queue {self.url} is unreachable: {redact_text(str(exc))}"
            ) from None

    def send(self, jobs: Sequence[Job], retries: int = 3) -> dict[int, str]:
        """Send up to 10 jobs in one batch; retry rejected entries. Returns {backup_id: error}
        for the ones still rejected."""
        pending = {str(job.backup_id): job for job in jobs}
        given_up: dict[int, str] = {}
        last_error: dict[str, str] = {}
        for _ in range(retries):
            if not pending:
                break
            entries = [self._entry(entry_id, job) for entry_id, job in pending.items()]
            with self._errors():
                response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            for ok in response.get("Successful", []):
                pending.pop(ok["Id"], None)
            for failed in response.get("Failed", []):
                reason = f"{failed.get('Code')}: {failed.get('Message', '')}"
                last_error[failed["Id"]] = reason
                if failed.get("SenderFault"):  # retrying won't help
                    pending.pop(failed["Id"], None)
                    given_up[int(failed["Id"])] = reason
        return given_up | {int(i): last_error.get(i, "rejected") for i in pending}

    def _entry(self, entry_id: str, job: Job) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": job.body()}
        if self.fifo:
            # One group per app keeps an app's messages in order without serialising
            # the whole queue; the id dedups a resend of the same attempt.
            entry["MessageGroupId"] = job.app_id
            entry["MessageDeduplicationId"] = f"b{job.backup_id}-a{job.attempt}"
        return entry

    def receive(self, limit: int, wait: int, visibility: int) -> list[Received]:
        """Long-poll for up to `limit` messages, hidden from others for `visibility` seconds."""
        with self._errors():
            response = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(10, limit)),
                WaitTimeSeconds=wait,
                VisibilityTimeout=visibility,
            )
        return [
            Received(m.get("Body", ""), m["ReceiptHandle"], m["MessageId"])
            for m in response.get("Messages", [])
        ]

    def extend(self, received: Received, seconds: int) -> None:
        """Keep the message hidden `seconds` longer (0: visible again now)."""
        with self._errors():
            self.client.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=received.receipt, VisibilityTimeout=seconds
            )

    def extend_many(self, messages: Sequence[Received], seconds: int) -> list[str]:
        """Keep many messages hidden `seconds` longer, 10 per call; return the ids of
        those SQS refused (a receipt handle gone stale). A call that fails does not
        stop the others; the first failure is raised at the end."""
        refused: list[str] = []
        failure: QueueUnavailable | None = None
        for start in range(0, len(messages), BATCH):
            batch = messages[start : start + BATCH]
            entries = [
                {"Id": str(n), "ReceiptHandle": m.receipt, "VisibilityTimeout": seconds}
                for n, m in enumerate(batch)
            ]
            try:
                with self._errors():
                    response = self.client.change_message_visibility_batch(
                        QueueUrl=self.url, Entries=entries
                    )
            except QueueUnavailable as exc:  # the other batches still get their turn
                failure = failure or exc
                continue
            refused += [batch[int(f["Id"])].message_id for f in response.get("Failed", [])]
        if failure is not None:
            raise failure
        return refused

    def delete(self, received: Received) -> None:
        with self._errors():
            self.client.delete_message(QueueUrl=self.url, ReceiptHandle=received.receipt)
