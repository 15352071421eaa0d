"""enqueue_night's lanes against a real ledger and moto's SQS: every row sent once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from backupctl import enqueue
from backupctl.config import KEYS, RunSettings
from backupctl.enqueue import enqueue_night
from backupctl.ledger import Ledger
from backupctl.queue import SqsQueue
from backupctl.registry import App
from backupctl.storage import Storages
from tests.conftest import AWS_TEST_ENV

NIGHT = date(2026, 11, 28)
RUN = replace(
    RunSettings(**{key.name: key.default for key in KEYS if key.section == "run"}),
    mode="enqueue",
)


@pytest.fixture
def sqs(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    import boto3

    for name, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_SQS": moto_url}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    url = client.create_queue(QueueName=f"lanes-{id(client)}")["QueueUrl"]
    yield client, url
    client.delete_queue(QueueUrl=url)


def drain(client: Any, url: str) -> list[dict[str, Any]]:
    """Every message in the queue, read and deleted."""
    bodies: list[dict[str, Any]] = []
    while True:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            bodies.append(json.loads(m["Body"]))
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def night(ledger: Ledger, client: Any, url: str, apps: list[App], tmp_path: Path) -> int:
    report = enqueue_night(
        run_date=NIGHT,
        apps=apps,
        ledger=ledger,
        queue=SqsQueue(url, client),
        run=RUN,
        resend_after=3600.0,
        storages=Storages((tmp_path / "storage").as_uri()),
    )
    assert report.rejected == {}
    return report.sent


def test_lanes_sharing_a_night_send_every_row_exactly_once_and_a_rerun_sends_none(
    ledger: Ledger,
    sqs: tuple[Any, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Small chunks: many chunk boundaries, so the lanes' SKIP LOCKED paths cross often.
    monkeypatch.setattr(enqueue, "CHUNK", 7)
    monkeypatch.setattr(enqueue, "LANES", 3)
    client, url = sqs
    apps = [App(f"app-{i:03d}", "command", {"argv": ["true"]}) for i in range(230)]

    assert night(ledger, client, url, apps, tmp_path) == 230
    sent = Counter(body["app_id"] for body in drain(client, url))
    assert sent == Counter({app.id: 1 for app in apps})
    statuses = Counter(row["status"] for row in ledger.night_backups(NIGHT))
    assert statuses == {"enqueued": 230}

    assert night(ledger, client, url, apps, tmp_path) == 0
    assert drain(client, url) == []
