"""Storage holds exactly what the ledger points to: `verify --orphans` and `prune` find
and remove the rest; and the operator's checks of a configuration."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tests.conftest import S3, Setup
from tests.e2e.test_nightly_cli import NIGHT, assert_one_artifact_per_app, quick_apps

DAY = 86400


def _age(path: os.PathLike[str], seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _backup_id(setup: Setup, app_id: str) -> int:
    found = setup.query(
        "SELECT id FROM backupctl.backups WHERE app_id = %s AND run_date = %s", app_id, NIGHT
    )
    return int(str(found[0][0]))


def test_verify_orphans_lists_and_deletes_only_old_files_their_rows_do_not_point_to(
    setup: Setup,
) -> None:
    quick_apps(setup)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    for name in setup.files():  # the real artifacts are old too: still not orphans
        _age(setup.storage / name, 2 * DAY)
    b = _backup_id(setup, "cmd-0")
    folder = setup.storage / "cmd-0" / NIGHT
    old = folder / f"cmd-0-{NIGHT}-b{b}-a7.out.zst"  # an attempt published, never finished
    tmp = folder / f".cmd-0-{NIGHT}-b{b}-a8.out.zst.0123456789ab.tmp"  # a killed upload
    young = folder / f"cmd-0-{NIGHT}-b{b}-a9.out.zst"  # may be finishing right now
    foreign = folder / f"cmd-0-{NIGHT}-b999999-a1.out.zst"  # no such row: another ledger's?
    other = folder / "notes.txt"  # not a name backupctl writes: never touched
    for path in (old, tmp, young, foreign, other):
        path.write_bytes(b"x")
    for path in (old, tmp, foreign, other):
        _age(path, 2 * DAY)

    listed = setup.cli("verify", "--orphans")

    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert listed.stdout.count("orphan: ") == 2
    assert old.as_uri() in listed.stdout and tmp.as_uri() in listed.stdout
    assert f"not in this ledger (left alone): {foreign.as_uri()}" in listed.stdout
    assert "2 orphans" in listed.stdout

    deleted = setup.cli("verify", "--orphans", "--delete")
    assert deleted.returncode == 1, deleted.stdout  # the foreign file is still there
    assert "removed 2 orphans" in deleted.stdout
    assert not old.exists() and not tmp.exists()
    assert young.exists() and foreign.exists() and other.exists()
    for path in (young, foreign, other):
        path.unlink()
    again = setup.cli("verify", "--orphans")
    assert again.returncode == 0 and "no orphans" in again.stdout
    assert_one_artifact_per_app(setup, ["files-app", "cmd-0", "cmd-1"])


def test_prune_removes_orphans_too_and_a_dry_run_only_lists_them(setup: Setup) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    b = _backup_id(setup, "files-app")
    stray = setup.storage / "files-app" / NIGHT / f"files-app-{NIGHT}-b{b}-a5.tar.zst"
    stray.write_bytes(b"x")
    _age(stray, 2 * DAY)

    dry = setup.cli("prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove orphan {stray.as_uri()}" in dry.stdout and stray.exists()

    real = setup.cli("prune")
    assert real.returncode == 0, real.stderr
    assert f"removed orphan {stray.as_uri()}" in real.stdout and not stray.exists()
    assert_one_artifact_per_app(setup, ["files-app"])


def test_orphans_on_s3_include_unfinished_uploads(setup: Setup, s3: S3) -> None:
    quick_apps(setup, n=1)
    env = {**s3.env, "BACKUPCTL_STORAGE": f"s3://{s3.bucket}/nightly"}
    assert setup.cli("run-nightly", "--date", NIGHT, **env).returncode == 0
    b = _backup_id(setup, "files-app")
    stray = f"nightly/files-app/{NIGHT}/files-app-{NIGHT}-b{b}-a5.tar.zst"
    s3.client.put_object(Bucket=s3.bucket, Key=stray, Body=b"x")
    unfinished = f"nightly/files-app/{NIGHT}/files-app-{NIGHT}-b{b}-a6.tar.zst"
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key=unfinished)

    listed = setup.cli("verify", "--orphans", "--older-than", "0s", **env)
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert f"s3://{s3.bucket}/{stray}" in listed.stdout
    assert f"s3://{s3.bucket}/{unfinished} (unfinished upload)" in listed.stdout

    deleted = setup.cli("verify", "--orphans", "--delete", "--older-than", "0s", **env)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    keys = s3.keys()
    assert stray not in keys and len(keys) == 1
    assert s3.open_uploads() == []


def test_config_check_reports_backups_that_would_fail_now_with_exit_1(setup: Setup) -> None:
    setup.write_registry(f"""
[[app]]
id = "uploads"
kind = "files"
path = "{setup.root / "not-mounted-yet"}"

[[app]]
id = "crm"
kind = "command"
argv = ["/usr/local/bin/no-such-export", "--stdout"]

[[app]]
id = "fine"
kind = "command"
argv = ["{sys.executable}", "-c", "print(1)"]
""")
    result = setup.cli("config", "check")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "configuration is valid, but 2 backups would fail now:" in result.stdout
    assert f"app 'uploads': path {setup.root / 'not-mounted-yet'} does not exist" in result.stdout
    assert "app 'crm': argv: program /usr/local/bin/no-such-export does not exist" in result.stdout
    assert "'fine'" not in result.stdout


def test_enqueue_mode_refuses_a_timeout_beyond_sqs_visibility(setup: Setup) -> None:
    quick_apps(setup, n=1)
    env: dict[str, Any] = {
        "BACKUPCTL_RUN_MODE": "enqueue",
        "BACKUPCTL_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q",
        "BACKUPCTL_RUN_TIMEOUT": "13h",
    }
    result = setup.cli("config", "check", **env)
    assert result.returncode == 2
    assert "[run] timeout = 46800s is longer than SQS lets a message stay hidden" in result.stderr


def test_retry_of_a_night_or_app_never_recorded_is_a_usage_error(setup: Setup) -> None:
    quick_apps(setup, n=1)
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    night = setup.cli("retry", "--date", "2020-01-01")
    assert night.returncode == 2 and "retry: no night 2020-01-01 in the ledger" in night.stderr
    app = setup.cli("retry", "--date", NIGHT, "--app", "nope")
    assert app.returncode == 2 and "app 'nope' has no backup in night" in app.stderr
