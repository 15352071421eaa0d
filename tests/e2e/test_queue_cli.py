"""Enqueue mode and workers on SQS (moto's server over HTTP), the real CLI in subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AWS_TEST_ENV, Setup, free_port, kill_tree, wait_for
from tests.e2e.test_nightly_cli import assert_one_artifact_per_app, has_running_row, rows, slow_app

NIGHT = "2026-11-28"


@dataclass
class Queue:
    url: str
    client: Any
    fifo: bool

    def bodies(self) -> list[str]:
        """Every message now visible (made visible again right away)."""
        found: list[str] = []
        while True:
            got = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            if not got or len(found) > 100:
                return found
            found.extend(m["Body"] for m in got)
            if len(got) < 10:
                return found

    def send(self, body: str, group: str = "g", dedup: str | None = None) -> None:
        extra = {"MessageGroupId": group, "MessageDeduplicationId": dedup or body[:100]}
        self.client.send_message(
            QueueUrl=self.url, MessageBody=body, **(extra if self.fifo else {})
        )

    def visible(self) -> int:
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    def count(self) -> int:
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


_queues = iter(range(10**6))


def make_queue(moto_url: str, fifo: bool) -> Queue:
    import boto3

    client = boto3.client(
        "sqs",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    name = f"backups-{next(_queues)}" + (".fifo" if fifo else "")
    attrs = {"FifoQueue": "true"} if fifo else {}
    url = client.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    return Queue(url, client, fifo)


@pytest.fixture(params=["standard", "fifo"])
def queue(request: pytest.FixtureRequest, moto_url: str, setup: Setup) -> Iterator[Queue]:
    q = make_queue(moto_url, request.param == "fifo")
    setup.env.update(AWS_TEST_ENV, AWS_ENDPOINT_URL_SQS=moto_url, BACKUPCTL_QUEUE_URL=q.url)
    yield q
    q.client.delete_queue(QueueUrl=q.url)


@pytest.fixture
def standard_queue(moto_url: str, setup: Setup) -> Iterator[Queue]:
    q = make_queue(moto_url, fifo=False)
    setup.env.update(AWS_TEST_ENV, AWS_ENDPOINT_URL_SQS=moto_url, BACKUPCTL_QUEUE_URL=q.url)
    yield q
    q.client.delete_queue(QueueUrl=q.url)


def quick(app_ids: list[str]) -> str:
    return "".join(slow_app(a, chunks=2, delay=0.01) for a in app_ids)


def enqueue(setup: Setup, **env: str) -> None:
    result = setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env)
    assert result.returncode == 0, result.stdout + result.stderr


def rescue(setup: Setup, **env: str) -> None:
    """Run a worker as a service until the slow app's backup succeeded, then stop it.

    (A long poll of a killed worker may still be open at the emulator and take the
    message once more, hiding it for a while: a service worker just polls again.)
    """
    rescuer = setup.start("worker", **env)
    try:
        wait_for(lambda: rows(setup)["slow"][0] == "succeeded", timeout=60)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        out, err = rescuer.communicate(timeout=60)
    assert rescuer.returncode == 0, out + err


def test_enqueue_then_a_worker_backs_every_app_up_and_a_rerun_sends_nothing(
    setup: Setup, queue: Queue
) -> None:
    apps = [f"app-{i}" for i in range(5)]
    setup.write_registry(quick(apps))

    first = setup.cli("-v", "run-nightly", "--mode", "enqueue", "--date", NIGHT)
    assert first.returncode == 0, first.stderr
    assert f"night {NIGHT}: 5 enqueued now" in first.stdout
    bodies = [json.loads(b) for b in queue.bodies()]
    assert sorted(b["app_id"] for b in bodies) == apps
    assert all(set(b) == {"v", "app_id", "run_date", "backup_id"} for b in bodies)
    assert {r[0] for r in rows(setup).values()} == {"enqueued"}

    again = setup.cli("-v", "run-nightly", "--mode", "enqueue", "--date", NIGHT)
    assert "0 enqueued now, 5 enqueued" in again.stdout

    worker = setup.cli("worker", "--once")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert "5 backups run" in worker.stdout
    assert_one_artifact_per_app(setup, apps)
    assert queue.count() == 0
    night = setup.query("SELECT status FROM backupctl.nightly_runs WHERE run_date = %s", NIGHT)
    assert night == [("complete",)]


def test_every_message_delivered_twice_still_makes_one_backup_per_app(
    setup: Setup, queue: Queue
) -> None:
    apps = [f"app-{i}" for i in range(4)]
    setup.write_registry(quick(apps))
    enqueue(setup)
    for body in queue.bodies():  # SQS delivers at least once: here, always twice
        app = json.loads(body)["app_id"]
        queue.send(body, group=app, dedup=f"dup-{app}")

    worker = setup.cli("worker", "--once")

    assert worker.returncode == 0, worker.stdout + worker.stderr
    found = rows(setup)
    assert {a: found[a][:2] for a in apps} == dict.fromkeys(apps, ("succeeded", 1))
    assert_one_artifact_per_app(setup, apps)
    assert "4 backups run, 4 messages for backups done or held elsewhere" in worker.stdout
    assert queue.count() == 0


def test_two_workers_at_once_back_every_app_up_once(setup: Setup, queue: Queue) -> None:
    apps = [f"app-{i}" for i in range(6)]
    setup.write_registry("".join(slow_app(a, chunks=3, delay=0.05) for a in apps))
    enqueue(setup)

    workers = [setup.start("worker", "--once", "--concurrency", "2") for _ in range(2)]
    for w in workers:
        w.wait(timeout=90)

    assert [w.returncode for w in workers] == [0, 0]
    found = rows(setup)
    assert {a: found[a][:2] for a in apps} == dict.fromkeys(apps, ("succeeded", 1))
    assert_one_artifact_per_app(setup, apps)


def test_a_worker_killed_mid_backup_is_finished_by_another_after_the_visibility_timeout(
    setup: Setup, standard_queue: Queue
) -> None:
    setup.write_registry(slow_app("slow", chunks=30, delay=0.1))
    env = {"BACKUPCTL_RUN_LEASE": "1s"}
    enqueue(setup, **env)

    doomed = setup.start("worker", **env)
    wait_for(lambda: any(f.endswith(".tmp") for f in setup.files()))
    kill_tree(doomed)
    wait_for(lambda: has_running_row(setup, lease_expired=True))
    wait_for(lambda: standard_queue.visible() == 1)  # the visibility timeout has passed

    rescue(setup, **env)

    assert rows(setup)["slow"][:2] == ("succeeded", 2)
    assert_one_artifact_per_app(setup, ["slow"])
    assert standard_queue.count() == 0


def test_a_zombie_worker_cannot_mark_the_row_or_leave_a_second_artifact(
    setup: Setup, standard_queue: Queue
) -> None:
    setup.write_registry(slow_app("slow", chunks=20, delay=0.1))
    env = {"BACKUPCTL_RUN_LEASE": "1s"}
    enqueue(setup, **env)
    zombie = setup.start("worker", "--once", **env)
    try:
        wait_for(lambda: any(f.endswith(".tmp") for f in setup.files()))
        zombie.send_signal(signal.SIGSTOP)
        wait_for(lambda: has_running_row(setup, lease_expired=True))
        wait_for(lambda: standard_queue.visible() == 1)
        rescue(setup, **env)
        assert rows(setup)["slow"][:2] == ("succeeded", 2)
    finally:
        zombie.send_signal(signal.SIGCONT)
    out, err = zombie.communicate(timeout=60)

    assert "lost" in out, out + err
    assert rows(setup)["slow"][:2] == ("succeeded", 2)
    assert_one_artifact_per_app(setup, ["slow"])


def test_poison_messages_are_deleted_and_the_loop_keeps_serving_good_ones(
    setup: Setup, standard_queue: Queue
) -> None:
    setup.write_registry(quick(["good"]))
    enqueue(setup)
    [good] = [json.loads(b) for b in standard_queue.bodies()]
    poison = [
        "this is not json",
        json.dumps({**good, "v": 99}),
        json.dumps({**good, "app_id": "not-in-registry"}),
        json.dumps({**good, "backup_id": 999_999}),
        json.dumps({**good, "argv": ["rm", "-rf", "/"]}),
        json.dumps(["a", "list"]),
    ]
    for body in poison:
        standard_queue.send(body)

    worker = setup.cli("worker", "--once")

    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert "1 backup run" in worker.stdout
    assert "6 poison messages deleted" in worker.stdout
    assert rows(setup)["good"][:2] == ("succeeded", 1)
    assert standard_queue.count() == 0


def test_an_unreachable_queue_leaves_rows_pending_and_a_rerun_finishes_the_job(
    setup: Setup, standard_queue: Queue
) -> None:
    setup.write_registry(quick(["a", "b"]))
    closed = f"http://127.0.0.1:{free_port()}"

    down = setup.cli(
        "run-nightly",
        "--mode",
        "enqueue",
        "--date",
        NIGHT,
        AWS_ENDPOINT_URL_SQS=closed,
        AWS_MAX_ATTEMPTS="1",
    )

    assert down.returncode == 3, down.stdout + down.stderr
    assert "queue" in down.stderr and "unreachable" in down.stderr
    assert "Traceback" not in down.stderr
    assert {r[0] for r in rows(setup).values()} == {"pending"}

    enqueue(setup)
    assert setup.cli("worker", "--once").returncode == 0
    assert_one_artifact_per_app(setup, ["a", "b"])


def worker_mid_backup(setup: Setup, chunks: int, grace: str) -> subprocess.Popen[str]:
    """Enqueue a slow app and start a service worker; return once it is writing."""
    setup.write_registry(slow_app("slow", chunks=chunks, delay=0.1))
    enqueue(setup)
    worker = setup.start("worker", "--grace", grace)
    wait_for(lambda: any(f.endswith(".tmp") for f in setup.files()))
    return worker


def test_sigterm_lets_the_running_backup_finish_within_the_grace_period(
    setup: Setup, standard_queue: Queue
) -> None:
    worker = worker_mid_backup(setup, chunks=15, grace="60s")

    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)

    assert worker.returncode == 0, out + err
    assert "stopped: received SIGTERM" in out
    assert rows(setup)["slow"][:2] == ("succeeded", 1)
    assert_one_artifact_per_app(setup, ["slow"])
    assert standard_queue.count() == 0


def test_past_the_grace_period_a_backup_is_given_back_for_another_worker(
    setup: Setup, standard_queue: Queue
) -> None:
    worker = worker_mid_backup(setup, chunks=100, grace="0.5s")

    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)

    assert worker.returncode == 0, out + err
    assert "released" in out
    status, attempts, *_ = rows(setup)["slow"]
    assert (status, attempts) == ("enqueued", 0)
    assert setup.files() == []  # the half-written attempt is gone

    setup.write_registry(slow_app("slow", chunks=2, delay=0.01))
    rescue(setup)
    assert rows(setup)["slow"][:2] == ("succeeded", 1)
    assert_one_artifact_per_app(setup, ["slow"])


def test_a_worker_without_a_queue_is_a_usage_error(setup: Setup) -> None:
    setup.write_registry(quick(["a"]))
    result = setup.cli("worker", "--once")
    assert result.returncode == 2
    assert "worker needs a queue" in result.stderr
    assert Path(sys.executable).exists()


def test_a_second_sigterm_gives_the_running_backup_back_at_once(
    setup: Setup, standard_queue: Queue
) -> None:
    worker = worker_mid_backup(setup, chunks=200, grace="10m")

    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    out, err = worker.communicate(timeout=60)

    assert worker.returncode == 0, out + err
    assert time.monotonic() - started < 10  # not the 20 s the backup had left
    assert "released" in out
    assert rows(setup)["slow"][:2] == ("enqueued", 0)
    assert setup.files() == []


def test_a_rerun_resends_what_was_enqueued_too_long_ago(
    setup: Setup, standard_queue: Queue
) -> None:
    setup.write_registry(quick(["a"]))
    enqueue(setup)
    standard_queue.client.purge_queue(QueueUrl=standard_queue.url)  # the message is lost

    soon = setup.cli("-v", "run-nightly", "--mode", "enqueue", "--date", NIGHT)
    assert "0 enqueued now" in soon.stdout
    late = setup.cli(
        "-v",
        "run-nightly",
        "--mode",
        "enqueue",
        "--date",
        NIGHT,
        BACKUPCTL_QUEUE_RESEND_AFTER="1ms",
    )
    assert "1 enqueued now" in late.stdout, late.stdout + late.stderr

    assert setup.cli("worker", "--once").returncode == 0
    assert rows(setup)["a"][:2] == ("succeeded", 1)
