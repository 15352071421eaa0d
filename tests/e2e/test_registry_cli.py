"""The real CLI with each registry source: an HTTP(S) API the test serves (its token
checked), a query on the test Postgres, a folder of files. Every command reads them
the same way; an API that is down is exit 3 and one line, a malformed answer exit 2,
and the guard refuses an empty answer."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import AWS_TEST_ENV, Setup
from tests.e2e.conftest import MakeDb
from tests.e2e.test_nightly_cli import NIGHT, _ledger_tables, assert_one_artifact_per_app, rows
from tests.e2e.test_queue_cli import Queue, make_queue
from tests.registry_server import RegistryApi, as_url, make_ca, registry_api

TOKEN = "tok-e2e-71c0f3a9d4"
# A command app that fails if it can see the registry's token in its environment.
NO_TOKEN_SEEN = 'if [ -n "${INVENTORY_TOKEN+set}" ]; then exit 7; fi; printf "%s" "$0"'


def command_app(app_id: str, **extra: object) -> dict[str, object]:
    return {"id": app_id, "kind": "command", "argv": ["/bin/sh", "-c", NO_TOKEN_SEEN, app_id]} | (
        extra
    )


@pytest.fixture
def api(setup: Setup) -> Iterator[RegistryApi]:
    """The registry API, and the CLI's environment pointed at it with its token."""
    with registry_api(token=TOKEN) as server:
        setup.env.update(
            BACKUPCTL_REGISTRY=server.url,
            BACKUPCTL_REGISTRY_TOKEN_ENV="INVENTORY_TOKEN",
            INVENTORY_TOKEN=TOKEN,
        )
        yield server


def ledger_text(setup: Setup) -> str:
    """Everything the ledger recorded about the runs, as text."""
    if not _ledger_tables(setup):
        return ""
    found = setup.query("SELECT command, args FROM backupctl.invocations")
    found += setup.query("SELECT app_id, coalesce(error, '') FROM backupctl.backups")
    return repr(found)


# -- an HTTP API ------------------------------------------------------------------------


def test_run_nightly_backs_up_the_apps_an_api_lists_and_the_token_stays_secret(
    setup: Setup, api: RegistryApi
) -> None:
    api.serve_apps(
        {"apps": [command_app("shop"), command_app("crm"), command_app("old", enabled=False)]}
    )

    result = setup.cli("-v", "run-nightly", "--date", NIGHT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"night {NIGHT}: 2 backed up now" in result.stdout
    assert_one_artifact_per_app(setup, ["shop", "crm"])  # the token was not in their env
    assert set(rows(setup)) == {"shop", "crm"}
    assert set(api.auths()) == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.stdout + result.stderr + ledger_text(setup)

    status = setup.cli("status", "--date", NIGHT, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["judged"]["source"] == "registry"


def test_an_api_answering_500_is_exit_3_in_one_line_and_nothing_is_planned(
    setup: Setup, api: RegistryApi
) -> None:
    api.serve(500, b"<html>oops</html>")

    result = setup.cli("run-nightly", "--date", NIGHT)

    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"backupctl: error: {api.url}: cannot read the registry: it answered 500 "
        "Internal Server Error"
    )
    assert _ledger_tables(setup) == 0
    assert setup.files() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>maintenance</html>", "the answer is not JSON (Expecting value at line 1"),
        (
            json.dumps([{"id": "shop", "kind": "command", "argv": "/bin/true"}]).encode(),
            "app 'shop': argv: must be a non-empty list of strings",
        ),
        (
            json.dumps([{"id": "shop", "kind": "mongo"}]).encode(),
            "app 'shop': unknown kind 'mongo'",
        ),
    ],
)
def test_a_malformed_answer_is_exit_2_naming_the_api_and_the_app(
    setup: Setup, api: RegistryApi, body: bytes, message: str
) -> None:
    api.serve(200, body)

    result = setup.cli("run-nightly", "--date", NIGHT)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"backupctl: error: {api.url}: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert _ledger_tables(setup) == 0


def test_a_refused_token_is_exit_2_naming_the_variable(setup: Setup, api: RegistryApi) -> None:
    api.serve_apps([command_app("shop")])

    result = setup.cli("run-nightly", "--date", NIGHT, INVENTORY_TOKEN="stale-token-0b1e")

    assert result.returncode == 2
    assert (
        "401 Unauthorized: the token in $INVENTORY_TOKEN (registry_token_env) was refused"
        in result.stderr
    )
    assert "stale-token-0b1e" not in result.stderr
    assert _ledger_tables(setup) == 0


def test_the_guard_refuses_an_empty_answer_and_a_sudden_shrink(
    setup: Setup, api: RegistryApi
) -> None:
    api.serve_apps([])
    empty = setup.cli("run-nightly", "--date", NIGHT)
    assert empty.returncode == 2
    assert (
        f"{api.url}: the registry lists no enabled apps (no apps at all); nothing was planned"
        in empty.stderr
    )
    assert _ledger_tables(setup) == 0

    api.serve_apps([command_app(f"app-{i}") for i in range(4)])
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    api.serve_apps([command_app("app-0")])
    shrunk = setup.cli("run-nightly", "--date", "2026-11-29")
    assert shrunk.returncode == 2
    assert f"{api.url}: the registry lists 1 enabled app, but night {NIGHT} had 4" in shrunk.stderr


def test_check_and_status_ride_out_an_api_that_is_down_after_the_night(
    setup: Setup, api: RegistryApi
) -> None:
    api.serve_apps([command_app("shop")])
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    api.serve(503)

    check = setup.cli("check", "--date", NIGHT, "--json")
    status = setup.cli("status", "--date", NIGHT, "--json")

    assert status.returncode == 0, status.stderr
    judged = json.loads(status.stdout)["judged"]
    assert judged["source"] == "planned"
    assert "it answered 503 Service Unavailable" in judged["registry_error"]
    doc = json.loads(check.stdout)
    assert doc["state"] == "WARNING", doc
    assert TOKEN not in check.stdout + status.stdout


def test_config_check_lists_the_apps_of_an_https_api_trusted_through_its_ca_file(
    setup: Setup, tmp_path: Path
) -> None:
    ca = make_ca(tmp_path / "ca")
    with registry_api(token=TOKEN, tls=ca.server_context()) as server:
        server.serve_apps([command_app("shop"), command_app("old", enabled=False)])
        env = {
            "BACKUPCTL_REGISTRY": server.url,
            "BACKUPCTL_REGISTRY_TOKEN_ENV": "INVENTORY_TOKEN",
            "INVENTORY_TOKEN": TOKEN,
        }

        untrusted = setup.cli("config", "check", **env)
        listed = setup.cli(
            "config", "check", "--apps", "--json", BACKUPCTL_REGISTRY_CA_FILE=str(ca.ca_file), **env
        )

    assert untrusted.returncode == 2
    assert f"{server.url}: TLS certificate not trusted" in untrusted.stderr
    assert "set registry_ca_file" in untrusted.stderr
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert doc["registry"] == server.url
    assert doc["apps"]["list"] == [
        {"id": "shop", "kind": "command", "enabled": True, "from": f"{server.url}, app #1"},
        {"id": "old", "kind": "command", "enabled": False, "from": f"{server.url}, app #2"},
    ]
    assert doc["settings"]["registry_token_env"]["value"] == "INVENTORY_TOKEN"
    assert TOKEN not in listed.stdout + listed.stderr + untrusted.stdout + untrusted.stderr


def test_a_worker_with_an_api_registry_hands_back_a_message_for_an_app_it_lacks(
    setup: Setup, api: RegistryApi, moto_url: str
) -> None:
    queue: Queue = make_queue(moto_url, fifo=False)
    setup.env.update(AWS_TEST_ENV, AWS_ENDPOINT_URL_SQS=moto_url, BACKUPCTL_QUEUE_URL=queue.url)
    env = {"BACKUPCTL_RUN_LEASE": "2s"}
    try:
        api.serve_apps([command_app("stays"), command_app("goes")])
        planned = setup.cli("run-nightly", "--mode", "enqueue", "--date", NIGHT, **env)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        api.serve_apps([command_app("stays")])  # the API no longer lists "goes"

        worker = setup.cli("worker", "--once", **env)

        assert worker.returncode == 0, worker.stdout + worker.stderr
        assert "1 message for apps not in this registry handed back" in worker.stdout
        found = {app: status for app, (status, *_rest) in rows(setup).items()}
        assert found == {"stays": "succeeded", "goes": "enqueued"}
        assert queue.count() == 1  # handed back, not deleted
        assert TOKEN not in worker.stdout + worker.stderr
    finally:
        queue.client.delete_queue(QueueUrl=queue.url)


# -- a query on Postgres ----------------------------------------------------------------


def test_run_nightly_backs_up_the_rows_of_a_registry_query(
    setup: Setup, pg_server_url: str, make_db: MakeDb
) -> None:
    control = make_db(pg_server_url)
    with psycopg.connect(control, autocommit=True) as conn:
        conn.execute("CREATE TABLE services (slug text, live boolean, spec jsonb)")
        for slug, live in (("billing", True), ("search", True), ("legacy", False)):
            spec = {"kind": "command", "argv": ["/bin/sh", "-c", NO_TOKEN_SEEN, slug]}
            conn.execute("INSERT INTO services VALUES (%s, %s, %s)", (slug, live, json.dumps(spec)))
    # A password in the URL (the test server trusts local connections, so any will do).
    url = as_url(control).replace("postgres@", "postgres:pw-6c2b9e@", 1)
    env = {
        "BACKUPCTL_REGISTRY": url,
        "BACKUPCTL_REGISTRY_QUERY": "SELECT slug AS id, live AS enabled, spec AS params"
        " FROM services ORDER BY slug",
    }

    result = setup.cli("-v", "run-nightly", "--date", NIGHT, **env)
    check = setup.cli("config", "check", "--apps", **env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert_one_artifact_per_app(setup, ["billing", "search"])
    assert "legacy" not in rows(setup)
    assert check.returncode == 0, check.stdout + check.stderr
    masked = url.replace("pw-6c2b9e", "***")
    assert f"registry {masked} (registry_query): 3 apps, 2 enabled" in check.stdout
    assert [
        line.split()[1] for line in check.stdout.splitlines() if line.startswith("registry ")
    ] == [
        masked,  # the setting, in the table
        masked,  # the summary line
    ]
    assert "pw-6c2b9e" not in result.stdout + result.stderr + check.stdout + ledger_text(setup)


def test_a_registry_database_that_is_down_is_exit_3_in_one_line(setup: Setup) -> None:
    url = "postgresql://reader:pw-4e7d1a@127.0.0.1:1/control"

    result = setup.cli(
        "run-nightly", "--date", NIGHT, BACKUPCTL_REGISTRY=url, BACKUPCTL_REGISTRY_QUERY="SELECT 1"
    )

    assert result.returncode == 3
    assert result.stderr.count("\n") == 1, result.stderr
    assert "postgresql://reader:***@127.0.0.1:1/control (registry_query): cannot read" in (
        result.stderr
    )
    assert "pw-4e7d1a" not in result.stderr
    assert _ledger_tables(setup) == 0


# -- a folder of files ------------------------------------------------------------------


def test_a_folder_of_files_is_one_registry_and_a_duplicate_names_both_files(
    setup: Setup,
) -> None:
    folder = setup.root / "apps.d"
    folder.mkdir()
    team = '[[app]]\nid = "{0}"\nkind = "command"\nargv = ["{1}", "-c", "print(\'{0}\')"]\n'
    (folder / "10-web.toml").write_text(team.format("web", sys.executable))
    (folder / "20-data.toml").write_text(team.format("data", sys.executable))
    env = {"BACKUPCTL_REGISTRY": f"{folder}/"}

    listed = setup.cli("config", "check", "--apps", **env)
    ran = setup.cli("run-nightly", "--date", NIGHT, **env)
    (folder / "30-copy.toml").write_text(team.format("web", sys.executable))
    duplicate = setup.cli("run-nightly", "--date", NIGHT, **env)

    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:3] for line in listed.stdout.splitlines() if "toml:" in line] == [
        ["web", "command", "yes"],
        ["data", "command", "yes"],
    ]
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_one_artifact_per_app(setup, ["web", "data"])
    assert duplicate.returncode == 2
    assert (
        f"{folder}/30-copy.toml:1: app 'web': duplicate id 'web' "
        f"(first defined at {folder}/10-web.toml:1)"
    ) in duplicate.stderr
