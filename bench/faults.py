"""Fault-injection suite: randomized rounds of real nights under the faults real nights
have, each healed the documented way, then checked against the ledger AND storage.

    .venv/bin/python bench/faults.py --rounds 200 [--seed S] [--verbose]

Real parts throughout: a Postgres of its own that the suite restarts and stops
(pg_ctl), moto's server for S3 and SQS over HTTP (behind a fault proxy for S3
errors), the real CLI in subprocesses, SIGKILL and SIGSTOP, a small tmpfs for a full
disk (where this machine lets us mount one; the suite says when it cannot).

Each round backs up one night of a small fleet, directly or through the queue and a
service worker, and injects at least one fault while it runs:

    kill_run         SIGKILL of run-nightly mid-backup
    kill_worker      SIGKILL of the worker mid-backup
    stall            SIGSTOP of the busy process past its lease, then SIGCONT
    ledger_restart   pg_ctl restart -m fast
    ledger_outage    the ledger stopped for up to half a lease, then started
    enospc           storage on a tmpfs too small for one app's backup
    s3_errors        every S3 upload answered with HTTP 500 for a while
    duplicate        every queue message delivered twice
    registry_add     an app added to the registry mid-night
    registry_remove  an app removed from the registry mid-night

Then it heals the night as an operator would (wait out the leases, rerun
run-nightly, `retry`, a worker --once) and counts, against the ledger and storage:

    lost      an app of the night without a succeeded row whose artifact is intact
    doubled   more than one artifact in storage for one app's night
    orphaned  a file (or unfinished upload) in storage that no succeeded row points to

The last line is `rounds=N faults=F lost=L doubled=D orphaned=O`; the exit code is 0
only when L, D and O are all 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/faults.py`: put the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.servers import RestartablePostgres, moto_server
from tests.s3_fault_proxy import S3FaultProxy

REPO = Path(__file__).resolve().parents[1]
SLOW = REPO / "tests" / "e2e" / "slow_writer.py"
LEASE = 2.0  # short, so a killed holder's rows are taken over within the round
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
FAULTS = (
    "kill_run",
    "kill_worker",
    "stall",
    "ledger_restart",
    "ledger_outage",
    "enospc",
    "s3_errors",
    "duplicate",
    "registry_add",
    "registry_remove",
)
QUEUE_ONLY = {"kill_worker", "duplicate"}
DIRECT_ONLY = {"kill_run"}
HEAL_ROUNDS = 8


@dataclass
class Tally:
    rounds: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    doubled: int = 0
    orphaned: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Round:
    """One night of a small fleet, its storage, and the processes that back it up."""

    number: int
    night: date
    root: Path
    pg: RestartablePostgres
    dbname: str
    mode: str
    storage_url: str
    env: dict[str, str]
    apps: dict[str, str] = field(default_factory=dict)  # id -> its [[app]] table
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    verbose: bool = False

    @property
    def registry(self) -> Path:
        return self.root / "apps.toml"

    def write_registry(self) -> None:
        tmp = self.registry.with_suffix(".new")
        tmp.write_text("".join(self.apps.values()))
        os.replace(tmp, self.registry)  # a worker never reads half a file

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "backupctl", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if self.verbose:
            print(f"    $ backupctl {' '.join(args)} -> {result.returncode}", flush=True)
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backupctl", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=self.root,
        )
        self.procs.append(proc)
        return proc

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg.conninfo(self.dbname), autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []

    def try_query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        try:
            return self.query(sql, *params)
        except psycopg.Error:
            return []

    def running(self) -> int:
        found = self.try_query(
            "SELECT count(*) FROM backupctl.backups WHERE status = 'running'"
            " AND lease_expires_at > now()"
        )
        return int(found[0][0]) if found else 0

    def night_status(self) -> str | None:
        found = self.try_query(
            "SELECT status FROM backupctl.nightly_runs WHERE run_date = %s", self.night
        )
        return str(found[0][0]) if found else None


def command_app(app_id: str, chunks: int, delay: float) -> str:
    return textwrap.dedent(f"""
        [[app]]
        id = "{app_id}"
        kind = "command"
        argv = ["{sys.executable}", "{SLOW}", "{chunks}", "{delay}"]
    """)


def noise_app(app_id: str, size: int) -> str:
    code = f"import os, sys; sys.stdout.buffer.write(os.urandom({size}))"
    return textwrap.dedent(f"""
        [[app]]
        id = "{app_id}"
        kind = "command"
        argv = ["{sys.executable}", "-c", "{code}"]
    """)


def files_app(app_id: str, folder: Path) -> str:
    return textwrap.dedent(f"""
        [[app]]
        id = "{app_id}"
        kind = "files"
        path = "{folder}"
    """)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# -- the round -------------------------------------------------------------------------


def pick_faults(rng: random.Random, can_mount: bool) -> tuple[str, list[str]]:
    """A mode and one to three faults that make sense together."""
    mode = rng.choice(["direct", "enqueue"])
    allowed = [
        f
        for f in FAULTS
        if not (mode == "direct" and f in QUEUE_ONLY)
        and not (mode == "enqueue" and f in DIRECT_ONLY)
        and (can_mount or f != "enospc")
    ]
    chosen = rng.sample(allowed, rng.choice([1, 1, 2, 3]))
    if "registry_add" in chosen and "registry_remove" in chosen:
        chosen.remove("registry_add")
    if "enospc" in chosen and "s3_errors" in chosen:
        chosen.remove("enospc")  # one storage per round
    return mode, sorted(chosen)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        check=True,
        capture_output=True,
    )
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def can_mount_tmpfs(root: Path) -> str | None:
    """None when this machine lets us mount a tmpfs, else why not."""
    probe = root / "mount-probe"
    try:
        with tmpfs(probe, "1m"):
            return None
    except (subprocess.CalledProcessError, OSError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        return (stderr.decode(errors="replace").strip() or str(exc)).splitlines()[0]


def run_round(
    number: int,
    rng: random.Random,
    pg: RestartablePostgres,
    moto: str,
    base: Path,
    tally: Tally,
    can_mount: bool,
    verbose: bool,
) -> None:
    mode, faults = pick_faults(rng, can_mount)
    night = date(2026, 1, 1) + timedelta(days=number)
    root = base / f"round-{number}"
    root.mkdir()
    dbname = f"faults_{number}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with contextlib.ExitStack() as stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPCTL_")}
        env.update(
            AWS,
            BACKUPCTL_DATABASE_URL=pg.conninfo(dbname),
            BACKUPCTL_REGISTRY=str(root / "apps.toml"),
            BACKUPCTL_RUN_LEASE=f"{LEASE:g}s",
            BACKUPCTL_RUN_MAX_ATTEMPTS="6",
            BACKUPCTL_RUN_RETRY_WAIT="0s",
            BACKUPCTL_RUN_PARALLEL="3",
            BACKUPCTL_QUEUE_RESEND_AFTER="1s",
            BACKUPCTL_QUEUE_WAIT="1s",
            BACKUPCTL_QUEUE_GRACE="2s",
            AWS_ENDPOINT_URL_SQS=moto,
            PYTHONPATH=str(REPO),
        )
        proxy: S3FaultProxy | None = None
        if "s3_errors" in faults:
            import boto3

            proxy = stack.enter_context(S3FaultProxy(moto))
            bucket = f"faults-{number}"
            boto3.client("s3", endpoint_url=moto, region_name="us-east-1", **_keys()).create_bucket(
                Bucket=bucket
            )
            storage_url = f"s3://{bucket}/nightly"
            env["AWS_ENDPOINT_URL_S3"] = proxy.url
        else:
            storage = root / "storage"
            if "enospc" in faults:
                stack.enter_context(tmpfs(storage, "2m"))
            storage_url = storage.as_uri()
        env["BACKUPCTL_STORAGE"] = storage_url
        queue_url = None
        if mode == "enqueue":
            queue_url = _make_queue(moto, f"faults-{number}")
            env["BACKUPCTL_QUEUE_URL"] = queue_url
        r = Round(number, night, root, pg, dbname, mode, storage_url, env, verbose=verbose)
        data = root / "data"
        data.mkdir()
        (data / "a.txt").write_text("alpha\n" * 100)
        for i in range(3):
            r.apps[f"slow-{i}"] = command_app(f"slow-{i}", chunks=rng.randint(8, 20), delay=0.1)
        r.apps["files"] = files_app("files", data)
        r.apps["big" if "enospc" in faults else "quick"] = (
            noise_app("big", 3_000_000) if "enospc" in faults else command_app("quick", 2, 0.01)
        )
        r.write_registry()
        if verbose:
            print(f"  round {number}: {mode}, {storage_url.split(':')[0]}, faults {faults}")
        tally.faults.update(faults)
        try:
            _inject(r, faults, rng, proxy)
        finally:
            for proc in r.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                proc.wait(timeout=30)
        if proxy is not None:
            proxy.fail_parts_from = None
        if "enospc" in faults:
            subprocess.run(
                ["mount", "-o", "remount,size=64m", str(root / "storage")],
                check=True,
                capture_output=True,
            )
        _heal(r)
        _check(r, tally, proxy)
        if queue_url:
            _delete_queue(moto, queue_url)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _inject(r: Round, faults: list[str], rng: random.Random, proxy: S3FaultProxy | None) -> None:
    if proxy is not None:
        proxy.fail_parts_from = 1  # every upload fails while the night starts
    if r.mode == "enqueue":
        r.cli("run-nightly", "--mode", "enqueue", "--date", str(r.night))
        if "duplicate" in faults:
            _duplicate_messages(r)
        busy = r.start("worker", "--concurrency", "3")
    else:
        busy = r.start("run-nightly", "--date", str(r.night))
    wait_for(lambda: r.running() > 0, timeout=30)
    time.sleep(rng.uniform(0, 0.6))
    for fault in rng.sample(faults, len(faults)):
        if fault == "kill_run" or fault == "kill_worker":
            if busy.poll() is None:
                busy.kill()
        elif fault == "stall":
            if busy.poll() is None:
                busy.send_signal(signal.SIGSTOP)
                time.sleep(LEASE * 1.5)
                busy.send_signal(signal.SIGCONT)
        elif fault == "ledger_restart":
            r.pg.restart()
        elif fault == "ledger_outage":
            r.pg.stop()
            time.sleep(rng.uniform(0.2, LEASE * 0.5))
            r.pg.start()
        elif fault == "registry_add":
            r.apps["added"] = command_app("added", 3, 0.02)
            r.write_registry()
        elif fault == "registry_remove":
            victim = rng.choice([a for a in r.apps if a.startswith("slow-")])
            del r.apps[victim]
            r.write_registry()
        elif fault == "s3_errors" and proxy is not None:
            time.sleep(rng.uniform(0.2, 1.0))
            proxy.fail_parts_from = None
        time.sleep(rng.uniform(0, 0.4))
    # Let the busy process end the night its own way (a worker serves until stopped).
    if r.mode == "direct":
        with contextlib.suppress(subprocess.TimeoutExpired):
            busy.wait(timeout=60)
    else:
        wait_for(lambda: busy.poll() is not None or r.night_status() == "complete", 30, 0.2)
        if busy.poll() is None:
            busy.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                busy.wait(timeout=30)


def _heal(r: Round) -> None:
    """What an operator does: wait out the leases, rerun the night (as the hourly cron
    line would), retry what failed; until `check` says the night is OK."""
    for _ in range(HEAL_ROUNDS):
        if r.cli("check", "--date", str(r.night)).returncode == 0:
            return
        time.sleep(LEASE + 0.2)  # leases of killed or stalled processes run out
        failed = r.try_query(
            "SELECT count(*) FROM backupctl.backups WHERE run_date = %s AND status = 'failed'",
            r.night,
        )
        if failed and failed[0][0]:
            r.cli("retry", "--date", str(r.night))
        if r.mode == "enqueue":
            r.cli("run-nightly", "--mode", "enqueue", "--date", str(r.night))
            r.cli("worker", "--once", "--concurrency", "3")
        else:
            r.cli("run-nightly", "--date", str(r.night))


def _check(r: Round, tally: Tally, proxy: S3FaultProxy | None) -> None:
    rows = r.query(
        "SELECT id, app_id, status, artifact_uri, sha256, size_bytes FROM backupctl.backups"
        " WHERE run_date = %s AND trigger = 'nightly'",
        r.night,
    )
    stored = _stored(r)  # key -> bytes (or None for an unfinished upload)
    by_app: dict[str, list[str]] = {}
    for key in stored:
        by_app.setdefault(key.split("/", 1)[0], []).append(key)
    referenced: set[str] = set()
    problems: list[str] = []
    for backup_id, app_id, status, uri, sha, size in rows:
        if status != "succeeded":
            continue
        if r.storage_url.startswith("s3://"):
            key = str(uri).split("/nightly/", 1)[-1]
        else:
            key = Path(str(uri).removeprefix("file://")).relative_to(r.root / "storage").as_posix()
        referenced.add(key)
        data = stored.get(key)
        if data is None or hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            problems.append(f"lost: {app_id} b{backup_id}: artifact missing or damaged")
            tally.lost += 1
    succeeded = {a for _, a, s, *_ in rows if s == "succeeded"}
    for app_id in r.apps:
        if app_id not in succeeded:
            status = {a: s for _, a, s, *_ in rows}.get(app_id, "not planned")
            problems.append(f"lost: {app_id} is {status} after healing")
            tally.lost += 1
    for app_id, keys in by_app.items():
        finished = [k for k in keys if not _temporary(k) and stored[k] is not None]
        if len(finished) > 1:
            problems.append(f"doubled: {app_id} has {sorted(finished)}")
            tally.doubled += 1
    for key in sorted(set(stored) - referenced):
        problems.append(f"orphaned: {key}")
        tally.orphaned += 1
    if proxy is not None and r.verbose:
        print(f"    s3 failed on purpose: {len(proxy.failed)} requests")
    for problem in problems:
        tally.problems.append(f"round {r.number} ({r.mode}): {problem}")
        print(f"  round {r.number}: {problem}", flush=True)


def _temporary(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(".")


def _stored(r: Round) -> dict[str, bytes | None]:
    """Every file in the round's storage, with its bytes; unfinished uploads as None."""
    if r.storage_url.startswith("file://"):
        root = r.root / "storage"
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
    import boto3

    bucket = r.storage_url.removeprefix("s3://").split("/", 1)[0]
    client = boto3.client(
        "s3", endpoint_url=r.env["AWS_ENDPOINT_URL_SQS"], region_name="us-east-1", **_keys()
    )
    found: dict[str, bytes | None] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"].removeprefix("nightly/")] = body
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        found[upload["Key"].removeprefix("nightly/") + " (unfinished upload)"] = None
    return found


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
    }


def _sqs(moto: str) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=moto, region_name="us-east-1", **_keys())


def _make_queue(moto: str, name: str) -> str:
    return str(_sqs(moto).create_queue(QueueName=name)["QueueUrl"])


def _delete_queue(moto: str, url: str) -> None:
    _sqs(moto).delete_queue(QueueUrl=url)


def _duplicate_messages(r: Round) -> None:
    client = _sqs(r.env["AWS_ENDPOINT_URL_SQS"])
    url = r.env["BACKUPCTL_QUEUE_URL"]
    got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    for message in got.get("Messages", []):
        client.send_message(QueueUrl=url, MessageBody=message["Body"])


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    tally = Tally()
    print(f"fault-injection suite: {args.rounds} rounds, seed {seed}", flush=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="backupctl-faults-") as tmp,
        RestartablePostgres(prefix="backupctl-faults-pg-") as pg,
        moto_server() as moto,
    ):
        base = Path(tmp)
        why_not = can_mount_tmpfs(base)
        if why_not is not None:
            print(f"note: no tmpfs can be mounted here ({why_not}): no enospc faults", flush=True)
        for number in range(1, args.rounds + 1):
            run_round(number, rng, pg, moto, base, tally, why_not is None, args.verbose)
            tally.rounds += 1
            if number % 10 == 0 or number == args.rounds:
                print(
                    f"  {number} rounds in {time.monotonic() - started:.0f}s, "
                    f"{len(tally.problems)} problems",
                    flush=True,
                )
    print("faults by kind: " + ", ".join(f"{k}={tally.faults[k]}" for k in FAULTS))
    print(
        f"rounds={tally.rounds} faults={sum(tally.faults.values())} lost={tally.lost} "
        f"doubled={tally.doubled} orphaned={tally.orphaned}"
    )
    return 0 if not (tally.lost or tally.doubled or tally.orphaned) else 1


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    # Unwinds like Ctrl-C, so the servers this run started are stopped and removed.
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
