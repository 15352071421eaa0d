"""The faults of a real night, against real parts: a ledger that restarts, a commit
whose answer is lost, a registry that shrinks or drifts, a full disk, a slow SQS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.servers import PgFaultProxy, RestartablePostgres
from tests.conftest import AWS_TEST_ENV, Setup, kill_tree, wait_for
from tests.e2e.test_monitoring_cli import Recorder
from tests.e2e.test_monitoring_cli import recorder as recorder  # a fixture
from tests.e2e.test_nightly_cli import (
    NIGHT,
    _ledger_tables,
    assert_one_artifact_per_app,
    quick_apps,
    rows,
    slow_app,
)
from tests.e2e.test_queue_cli import Queue, make_queue
from tests.s3_fault_proxy import S3FaultProxy

NIGHT2 = "2026-11-29"


def running(setup: Setup) -> int:
    found = setup.query("SELECT count(*) FROM backupctl.backups WHERE status = 'running'")
    return int(str(found[0][0]))


def running_safely(setup: Setup) -> int:
    """Like running(), but 0 while the ledger is away or not created yet."""
    try:
        return running(setup) if _ledger_tables(setup) else 0
    except Exception:
        return 0


def night_status(setup: Setup, night: str = NIGHT) -> str | None:
    found = setup.query("SELECT status FROM backupctl.nightly_runs WHERE run_date = %s", night)
    return str(found[0][0]) if found else None


def rows_of(setup: Setup, night: str) -> dict[str, tuple[str, int]]:
    found = setup.query(
        "SELECT app_id, status, attempts FROM backupctl.backups"
        " WHERE run_date = %s AND trigger = 'nightly'",
        night,
    )
    return {str(a): (str(s), int(str(n))) for a, s, n in found}


@pytest.fixture
def sqs(moto_url: str, restartable: tuple[Setup, RestartablePostgres]) -> Iterator[Queue]:
    setup, _ = restartable
    q = make_queue(moto_url, fifo=False)
    setup.env.update(AWS_TEST_ENV, AWS_ENDPOINT_URL_SQS=moto_url, BACKUPCTL_QUEUE_URL=q.url)
    yield q
    q.client.delete_queue(QueueUrl=q.url)


# -- the ledger restarts ----------------------------------------------------------------


def test_a_ledger_restart_mid_night_costs_no_backup_and_no_attempt(
    restartable: tuple[Setup, RestartablePostgres],
) -> None:
    setup, pg = restartable
    apps = [f"app-{i}" for i in range(4)]
    setup.write_registry("".join(slow_app(a, chunks=40, delay=0.1) for a in apps))
    env = {"BACKUPCTL_RUN_LEASE": "30s", "BACKUPCTL_RUN_PARALLEL": "4"}

    proc = setup.start("run-nightly", "--date", NIGHT, **env)
    try:
        wait_for(lambda: running_safely(setup) == 4, timeout=60)
        pg.restart()  # pg_ctl restart -m fast: every connection is cut
    except BaseException:
        kill_tree(proc)
        raise
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 0, out + err
    assert {a: rows(setup)[a][:2] for a in apps} == dict.fromkeys(apps, ("succeeded", 1))
    assert_one_artifact_per_app(setup, apps)
    assert night_status(setup) == "complete"


def test_a_ledger_outage_longer_than_a_lease_can_be_held_is_exit_3_and_a_rerun_heals_it(
    restartable: tuple[Setup, RestartablePostgres],
) -> None:
    setup, pg = restartable
    setup.write_registry(slow_app("slow", chunks=100, delay=0.1))
    env = {"BACKUPCTL_RUN_LEASE": "4s"}  # an outage of 3s is all it can ride out

    proc = setup.start("run-nightly", "--date", NIGHT, **env)
    try:
        wait_for(lambda: running_safely(setup) == 1, timeout=60)
        pg.stop()
        out, err = proc.communicate(timeout=60)
    finally:
        kill_tree(proc)
        pg.start()

    assert proc.returncode == 3, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("backupctl: error: the ledger database is unreachable"), err
    assert "Traceback" not in err

    time.sleep(4)  # the dead run's lease runs out
    setup.write_registry(slow_app("slow", chunks=2, delay=0.01))
    rerun = setup.cli("run-nightly", "--date", NIGHT, **env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_one_artifact_per_app(setup, ["slow"])


def test_an_ambiguous_commit_at_finish_never_deletes_the_artifact_the_ledger_points_to(
    restartable: tuple[Setup, RestartablePostgres],
) -> None:
    setup, pg = restartable
    setup.write_registry(slow_app("shop", chunks=3, delay=0.01))
    with PgFaultProxy("127.0.0.1", pg.port) as proxy:
        # The finish statement reaches the server and commits; its answer never comes.
        proxy.cut_after(b"SET status = 'succeeded', finished_at")
        result = setup.cli(
            "run-nightly", "--date", NIGHT, BACKUPCTL_DATABASE_URL=pg.conninfo(port=proxy.port)
        )

    assert proxy.cuts == 1
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(setup)["shop"][:2] == ("succeeded", 1)
    assert_one_artifact_per_app(setup, ["shop"])


def test_a_service_worker_rides_out_a_ledger_restart_and_serves_the_next_night(
    restartable: tuple[Setup, RestartablePostgres], sqs: Queue
) -> None:
    setup, pg = restartable
    apps = [f"app-{i}" for i in range(3)]
    setup.write_registry("".join(slow_app(a, chunks=30, delay=0.1) for a in apps))
    env = {"BACKUPCTL_RUN_LEASE": "30s"}
    assert setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env).returncode == 0

    worker = setup.start("worker", "--concurrency", "3", **env)
    try:
        wait_for(lambda: running_safely(setup) == 3, timeout=60)
        pg.restart()
        wait_for(lambda: night_status(setup) == "complete", timeout=90)
        assert worker.poll() is None  # still serving

        second = setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT2, **env)
        assert second.returncode == 0, second.stdout + second.stderr
        wait_for(lambda: night_status(setup, NIGHT2) == "complete", timeout=90)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)

    assert worker.returncode == 0, out + err
    for night in (NIGHT, NIGHT2):
        assert rows_of(setup, night) == dict.fromkeys(apps, ("succeeded", 1))
    files = setup.files()
    assert len(files) == 6 and not [f for f in files if f.endswith(".tmp")], files


def test_a_service_worker_stops_receiving_and_exits_3_after_ledger_outage(
    restartable: tuple[Setup, RestartablePostgres], sqs: Queue
) -> None:
    setup, pg = restartable
    setup.write_registry(slow_app("app-0", chunks=2, delay=0.01))
    env = {
        "BACKUPCTL_QUEUE_LEDGER_OUTAGE": "6s",
        "BACKUPCTL_RUN_LEASE": "4s",
        "BACKUPCTL_QUEUE_WAIT": "2s",  # it looks at the ledger before each receive
    }
    worker = setup.start("worker", **env)
    try:
        time.sleep(2)  # the worker is up and polling
        started = time.monotonic()
        pg.stop()
        out, err = worker.communicate(timeout=90)
        took = time.monotonic() - started
    finally:
        kill_tree(worker)
        pg.start()

    assert worker.returncode == 3, out + err
    assert took >= 5.5, took  # [queue] ledger_outage = 6s, counted from when it noticed
    assert "unreachable for" in err and "ledger_outage" in err


# -- the registry guard -------------------------------------------------------------


def _planned_nights(setup: Setup) -> list[tuple[object, ...]]:
    if not _ledger_tables(setup):
        return []
    return setup.query("SELECT run_date, status FROM backupctl.nightly_runs ORDER BY 1")


@pytest.mark.parametrize(
    "registry",
    [
        "",
        '[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\nenabled = false\n',
    ],
    ids=["empty file", "every app disabled"],
)
def test_a_registry_with_no_enabled_apps_is_refused_alarms_and_plans_nothing(
    setup: Setup, recorder: Recorder, registry: str
) -> None:
    setup.write_registry(registry)
    env = {"BACKUPCTL_MONITORING_PING_URL": recorder.url}

    result = setup.cli("run-nightly", "--date", NIGHT, **env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{setup.registry}: the registry lists no enabled apps" in result.stderr
    assert _planned_nights(setup) == []
    assert [path for _, path, _ in recorder.seen] == ["/ping/5ecret-uuid-0123456789/fail"]
    check = setup.cli("check", "--date", NIGHT)
    assert check.returncode == 2, check.stdout
    assert check.stdout.startswith("CRITICAL:")
    assert "the registry lists no enabled apps" in check.stdout


def _commands(app_ids: list[str]) -> str:
    return "".join(
        f'[[app]]\nid = "{a}"\nkind = "command"\nargv = ["{sys.executable}", "-c", "print(1)"]\n'
        for a in app_ids
    )


def test_a_registry_that_shrank_past_max_shrink_is_refused_unless_allowed(setup: Setup) -> None:
    apps = [f"app-{i}" for i in range(8)]
    setup.write_registry(_commands(apps))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    setup.write_registry(_commands(apps[:5]))  # 3 of 8 gone: more than 25%
    refused = setup.cli("run-nightly", "--date", NIGHT2)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (
        f"the registry lists 5 enabled apps, but night {NIGHT} had 8: 3 of those are missing"
        " (app-5, app-6, app-7)" in refused.stderr
    )
    assert "--allow-shrink" in refused.stderr
    assert [str(d) for d, _ in _planned_nights(setup)] == [NIGHT]
    check = setup.cli("check", "--date", NIGHT2)
    assert check.returncode == 2 and "no run recorded" in check.stdout

    allowed = setup.cli("run-nightly", "--date", NIGHT2, "--allow-shrink")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert sorted(rows_of(setup, NIGHT2)) == apps[:5]


def test_one_app_removed_from_the_registry_passes_the_guard(setup: Setup) -> None:
    apps = [f"app-{i}" for i in range(3)]
    setup.write_registry(_commands(apps))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    setup.write_registry(_commands(apps[:2]))  # one of three: a third, but only one

    result = setup.cli("run-nightly", "--date", NIGHT2)

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(rows_of(setup, NIGHT2)) == apps[:2]


# -- registry drift -------------------------------------------------------------------


BROKEN = f"""
[[app]]
id = "broken"
kind = "command"
argv = ["{sys.executable}", "-c", "import sys; sys.exit(3)"]
"""


def test_an_app_removed_mid_night_is_skipped_and_the_night_completes(setup: Setup) -> None:
    setup.write_registry(_commands(["keep-a", "keep-b"]) + BROKEN)
    # Attempts left, but the retry is too far off for this run to wait for it.
    env = {
        "BACKUPCTL_RUN_MAX_ATTEMPTS": "3",
        "BACKUPCTL_RUN_RETRY_WAIT": "1h",
        "BACKUPCTL_RUN_RETRY_WAIT_MAX": "1h",
    }
    first = setup.cli("run-nightly", "--date", NIGHT, **env)
    assert first.returncode == 1  # broken failed, with attempts left
    assert rows(setup)["broken"][0] == "failed"

    setup.write_registry(_commands(["keep-a", "keep-b"]))  # the app is retired
    second = setup.cli("run-nightly", "--date", NIGHT, **env)

    assert second.returncode == 0, second.stdout + second.stderr
    status, _attempts, uri, *_rest, error = rows(setup)["broken"]
    assert status == "skipped" and uri is None
    assert "no longer in the registry" in str(error)
    assert night_status(setup) == "complete"
    check = setup.cli("check", "--date", NIGHT)
    assert check.returncode == 0, check.stdout
    assert "1 app no longer in the registry (not judged)" in check.stdout
    assert "broken: skipped, no longer in the registry, not judged" in check.stdout
    status_out = setup.cli("status", "--date", NIGHT).stdout
    assert "1 app no longer in the registry" in status_out.splitlines()[0]
    assert ["broken", "removed", "skipped"] in [
        line.split()[:3] for line in status_out.splitlines()
    ]
    runs = setup.cli("runs", "--json").stdout
    assert json.loads(runs)["nights"][0]["skipped"] == 1


def test_a_worker_backs_up_an_app_added_after_it_started(
    restartable: tuple[Setup, RestartablePostgres], sqs: Queue
) -> None:
    setup, _ = restartable
    setup.write_registry(_commands(["first"]))
    assert setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT).returncode == 0
    worker = setup.start("worker")
    try:
        wait_for(lambda: rows_of(setup, NIGHT).get("first") == ("succeeded", 1), timeout=60)
        setup.write_registry(_commands(["first", "late"]))
        rerun = setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        wait_for(lambda: rows_of(setup, NIGHT).get("late") == ("succeeded", 1), timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, out + err
    assert night_status(setup) == "complete"
    assert sqs.count() == 0


def test_a_worker_never_runs_nor_skips_an_app_it_does_not_know_the_planner_skips_it(
    restartable: tuple[Setup, RestartablePostgres], sqs: Queue
) -> None:
    setup, _ = restartable
    env = {"BACKUPCTL_RUN_LEASE": "2s"}  # a message handed back shows again after 4s
    setup.write_registry(_commands(["stays", "goes"]))
    assert setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env).returncode == 0
    setup.write_registry(_commands(["stays"]))  # this worker's copy has lost "goes"

    worker = setup.cli("worker", "--once", **env)

    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert "1 message for apps not in this registry handed back" in worker.stdout
    assert rows_of(setup, NIGHT) == {"stays": ("succeeded", 1), "goes": ("enqueued", 0)}
    assert sqs.count() == 1  # handed back, not deleted

    # The planner, with the same registry, skips the backup; the message then goes.
    rerun = setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rows_of(setup, NIGHT)["goes"] == ("skipped", 0)
    assert night_status(setup) == "complete"
    wait_for(lambda: sqs.visible() == 1, timeout=30)
    again = setup.cli("worker", "--once", **env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sqs.count() == 0


def test_a_worker_starts_no_backup_of_a_night_whose_window_has_closed(
    restartable: tuple[Setup, RestartablePostgres], sqs: Queue
) -> None:
    setup, _ = restartable
    setup.write_registry(_commands(["late"]))
    assert setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT).returncode == 0
    # As a night planned inside its window is: no new backup past the window's end.
    setup.query(
        "UPDATE backupctl.nightly_runs SET claim_until = now() - interval '1 minute'"
        " WHERE run_date = %s",
        NIGHT,
    )

    worker = setup.cli("worker", "--once")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert rows_of(setup, NIGHT) == {"late": ("pending", 0)}
    assert "window of night" in worker.stderr
    assert sqs.count() == 0

    # An operator runs the night on purpose: no window any more, for workers either.
    assert setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT).returncode == 0
    again = setup.cli("worker", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert rows_of(setup, NIGHT) == {"late": ("succeeded", 1)}


# -- per-app settings, secrets ----------------------------------------------------------


def test_a_malformed_per_app_storage_url_is_exit_2_and_the_ledger_is_untouched(
    setup: Setup,
) -> None:
    setup.write_registry(_commands(["good"]) + _commands(["nas"]).rstrip("\n") + "\n")
    text = setup.registry.read_text() + 'storage = "file://nas/backups"\n'
    setup.registry.write_text(text)

    for command in (["run-nightly", "--date", NIGHT], ["config", "check"], ["backup", "nas"]):
        result = setup.cli(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"{setup.registry}:" in result.stderr
        assert "app 'nas': storage:" in result.stderr
        assert "three slashes" in result.stderr
        assert "Traceback" not in result.stderr
    assert _ledger_tables(setup) == 0


def test_a_session_token_never_shows_in_debug_output(setup: Setup, s3: Any) -> None:
    canary = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENcanary0123456789"
    quick_apps(setup, n=1)
    env = {
        **s3.env,
        "AWS_SESSION_TOKEN": canary,
        "BACKUPCTL_STORAGE": f"s3://{s3.bucket}/nightly",
    }

    result = setup.cli("-vv", "--log-format", "text", "run-nightly", "--date", NIGHT, **env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "botocore" in result.stderr  # the request log was on
    assert "X-Amz-Security-Token" in result.stderr
    assert canary not in result.stdout + result.stderr
    assert "Signature=" not in result.stderr.replace("Signature=***", "")


def test_a_child_process_sees_neither_the_ledger_url_nor_another_apps_dsn(setup: Setup) -> None:
    dump_env = "import json, os; print(json.dumps(dict(os.environ)))"
    setup.write_registry(f"""
[[app]]
id = "env-dump"
kind = "command"
argv = ["{sys.executable}", "-c", "{dump_env}"]

[[app]]
id = "shop"
kind = "postgres"
dsn_env = "SHOP_DATABASE_URL"
enabled = false
""")
    secret = "postgresql://shop:hunter2-canary@db.internal/shop"
    result = setup.cli("run-nightly", "--date", NIGHT, SHOP_DATABASE_URL=secret)
    assert result.returncode == 0, result.stdout + result.stderr

    restored = setup.cli("restore", "env-dump", "--date", NIGHT, "--to", "-")
    assert restored.returncode == 0, restored.stderr
    child = json.loads(restored.stdout)
    assert "PATH" in child
    assert not [name for name in child if name.startswith("BACKUPCTL_")]
    assert "SHOP_DATABASE_URL" not in child
    assert "hunter2-canary" not in restored.stdout


# -- storage, restore, privileges --------------------------------------------------------


@pytest.fixture
def tiny_storage(setup: Setup) -> Iterator[Path]:
    """The storage folder on a 1 MiB tmpfs (root only)."""
    setup.storage.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(setup.storage)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"mounting a tmpfs needs root: {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield setup.storage
    finally:
        subprocess.run(["umount", "-l", str(setup.storage)], check=False)


def test_a_full_storage_says_the_storage_is_full_naming_it(
    setup: Setup, tiny_storage: Path
) -> None:
    noise = "import os, sys; sys.stdout.buffer.write(os.urandom(3_000_000))"
    data = setup.root / "data"
    data.mkdir()
    (data / "noise.bin").write_bytes(os.urandom(3_000_000))
    setup.write_registry(f"""
[[app]]
id = "big-command"
kind = "command"
argv = ["{sys.executable}", "-c", "{noise}"]

[[app]]
id = "big-files"
kind = "files"
path = "{data}"
""")
    result = setup.cli(
        "run-nightly", "--date", NIGHT, BACKUPCTL_RUN_MAX_ATTEMPTS="1", BACKUPCTL_RUN_PARALLEL="1"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    for app in ("big-command", "big-files"):
        status, *_rest, error = rows(setup)[app]
        assert status == "failed"
        assert f"storage {tiny_storage.as_uri()} is full" in str(error), error
        assert "cannot read" not in str(error)
    assert setup.files() == []  # nothing half-written stays


def test_restore_to_a_file_never_writes_through_a_planted_link(setup: Setup) -> None:
    quick_apps(setup, n=2)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    victim = setup.root / "victim.txt"
    victim.write_text("precious\n")
    target = setup.root / "out" / "cmd.out"
    target.parent.mkdir()
    # Every name a restore used to write through, or that an attacker might guess.
    for name in (".cmd.out.restoring", ".cmd.out.tmp", "cmd.out"):
        (target.parent / name).symlink_to(victim)

    refused = setup.cli("restore", "cmd-0", "--date", NIGHT, "--to", str(target))
    assert refused.returncode == 2 and "already exists" in refused.stderr
    (target.parent / "cmd.out").unlink()
    done = setup.cli("restore", "cmd-0", "--date", NIGHT, "--to", str(target))

    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink()
    assert target.read_text().startswith("hello 0")


def _as_role(setup: Setup, role: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(setup.database_url)
    params["user"] = role
    return make_conninfo(**{k: str(v) for k, v in params.items()})


@pytest.fixture
def roles(setup: Setup) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for role in made:
        setup.query(f"DROP OWNED BY {role}")
        setup.query(f"DROP ROLE IF EXISTS {role}")


def test_a_role_without_create_on_the_database_uses_an_existing_schema(
    setup: Setup, roles: list[str]
) -> None:
    role = f"bk_own_{os.getpid()}"
    roles.append(role)
    setup.query(f"CREATE ROLE {role} LOGIN")
    dbname = setup.query("SELECT current_database()")[0][0]
    setup.query(f'REVOKE CREATE ON DATABASE "{dbname}" FROM PUBLIC')
    setup.query(f"CREATE SCHEMA backupctl AUTHORIZATION {role}")
    quick_apps(setup, n=1)

    result = setup.cli("run-nightly", "--date", NIGHT, BACKUPCTL_DATABASE_URL=_as_role(setup, role))

    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(setup)["files-app"][0] == "succeeded"


def test_a_role_without_privileges_on_the_ledger_is_exit_3_in_one_line(
    setup: Setup, roles: list[str]
) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    role = f"bk_none_{os.getpid()}"
    roles.append(role)
    setup.query(f"CREATE ROLE {role} LOGIN")

    for command in (["status"], ["run-nightly", "--date", NIGHT]):
        result = setup.cli(*command, BACKUPCTL_DATABASE_URL=_as_role(setup, role))
        assert result.returncode == 3, (command, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert "the ledger database refused" in result.stderr
        assert "permission denied" in result.stderr


# -- pings, SQS ----------------------------------------------------------------------------


def test_no_success_ping_while_another_process_still_holds_rows_of_the_night(
    setup: Setup, recorder: Recorder
) -> None:
    gate = setup.root / "gate"
    setup.write_registry(slow_app("slow", chunks=2, delay=0.01, gate=gate) + _commands(["quick"]))
    env = {"BACKUPCTL_MONITORING_PING_URL": recorder.url, "BACKUPCTL_RUN_LEASE": "30s"}
    holder = setup.start("-v", "run-nightly", "--date", NIGHT, "--parallel", "1", **env)
    try:
        wait_for(lambda: running_safely(setup) == 1 and rows(setup)["slow"][0] == "running")
        other = setup.cli("-v", "run-nightly", "--date", NIGHT, **env)
        assert other.returncode == 0, other.stdout + other.stderr
        assert "running in another process" in other.stdout
        paths = [p for _, p, _ in recorder.seen]
        assert not [p for p in paths if p.endswith("0123456789")], paths  # no success yet
    finally:
        gate.touch()
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, out + err
    successes = [p for _, p, _ in recorder.seen if p.endswith("0123456789")]
    assert len(successes) == 1


def test_a_slow_sqs_does_not_cost_a_lease(
    restartable: tuple[Setup, RestartablePostgres], sqs: Queue, moto_url: str
) -> None:
    setup, _ = restartable
    setup.write_registry(slow_app("slow", chunks=50, delay=0.2))  # about 10s
    env = {"BACKUPCTL_RUN_LEASE": "4s"}
    assert setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env).returncode == 0

    def slow_visibility(_line: str, headers: Any, body: bytes) -> float:
        action = headers.get("X-Amz-Target", "") + body[:200].decode("utf-8", "replace")
        return 5.0 if "ChangeMessageVisibility" in action else 0.0

    with S3FaultProxy(moto_url) as proxy:
        proxy.delay = slow_visibility
        worker = setup.cli("worker", "--once", **env, AWS_ENDPOINT_URL_SQS=proxy.url)

    assert proxy.delayed, "the worker never extended a message's visibility"
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert rows_of(setup, NIGHT) == {"slow": ("succeeded", 1)}
    assert "lease not renewed" not in worker.stderr
