"""Each registry source against a real server: a folder of files, an HTTP(S) API in a
thread of the test (its token checked, its CA made here), a query on the test Postgres.
All of them validated like the file, with the same messages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backupctl.errors import EXIT_UNAVAILABLE, EXIT_USAGE, RegistryError, RegistryUnavailable
from backupctl.kinds import KINDS
from backupctl.registry import App, RegistrySpec, apps_from, open_source
from backupctl.registry import sources as registry_sources
from backupctl.registry.load import placed_apps
from tests.registry_server import Answer, RegistryApi, as_url, make_ca, registry_api

KIND_NAMES = ", ".join(sorted(KINDS))

TOKEN = "tok-3f9a1c7e5b2d"
SHOP = {"id": "shop", "kind": "command", "argv": ["/usr/bin/printf", "shop"]}
WIKI = {"id": "wiki", "kind": "files", "path": "/srv/wiki", "enabled": False}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without the waits between them (their number stays the real one)."""
    monkeypatch.setattr(registry_sources, "BACKOFF", 0.0)


def load(location: str, **spec: Any) -> list[App]:
    return apps_from(open_source(RegistrySpec(location, **spec)))


def problems(location: str, **spec: Any) -> list[str]:
    with pytest.raises(RegistryError) as excinfo:
        load(location, **spec)
    assert excinfo.value.exit_code == EXIT_USAGE
    return excinfo.value.problems


def unavailable(location: str, **spec: Any) -> str:
    with pytest.raises(RegistryUnavailable) as excinfo:
        load(location, **spec)
    assert excinfo.value.exit_code == EXIT_UNAVAILABLE
    message = str(excinfo.value)
    assert "\n" not in message  # one line
    return message


# -- a folder of files ------------------------------------------------------------------


def test_a_folder_reads_every_toml_file_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "20-wiki.toml").write_text('[[app]]\nid = "wiki"\nkind = "files"\npath = "w"\n')
    (tmp_path / "10-shop.toml").write_text(
        '[[app]]\nid = "shop"\nkind = "command"\nargv = ["true"]\n'
        '[[app]]\nid = "crm"\nkind = "command"\nargv = ["true"]\n'
    )
    (tmp_path / "README.md").write_text("not a registry file\n")
    (tmp_path / ".#10-shop.toml").write_text("an editor's lock file, hidden\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "gone.toml").write_text('[[app]]\nid = "gone"\nkind = "command"\n')

    placed = placed_apps(open_source(RegistrySpec(str(tmp_path))))

    assert [(app.id, at) for app, at in placed] == [
        ("shop", f"{tmp_path}/10-shop.toml:1"),
        ("crm", f"{tmp_path}/10-shop.toml:5"),
        ("wiki", f"{tmp_path}/20-wiki.toml:1"),
    ]
    # A relative path is relative to the file that holds it, as in a single file.
    assert placed[2][0].params == {"path": str(tmp_path / "w")}


def test_a_duplicate_id_across_files_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[[app]]\nid = "shop"\nkind = "command"\nargv = ["true"]\n')
    (tmp_path / "b.toml").write_text(
        '[[app]]\nid = "crm"\nkind = "command"\nargv = ["true"]\n\n'
        '[[app]]\nid = "shop"\nkind = "command"\nargv = ["false"]\n'
    )

    assert problems(str(tmp_path)) == [
        f"{tmp_path}/b.toml:6: app 'shop': duplicate id 'shop' "
        f"(first defined at {tmp_path}/a.toml:1)"
    ]


def test_a_broken_file_in_a_folder_does_not_hide_the_problems_of_the_others(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.toml").write_text("[[app]\n")
    (tmp_path / "b.toml").write_text('[[app]]\nid = "x"\nkind = "ftp"\n')

    found = problems(str(tmp_path))

    assert len(found) == 2
    assert found[0].startswith(f"{tmp_path}/a.toml: not valid TOML")
    assert found[1] == (f"{tmp_path}/b.toml:1: app 'x': unknown kind 'ftp' (one of: {KIND_NAMES})")


def test_a_folder_without_files_has_no_apps_and_its_stamp_follows_its_files(
    tmp_path: Path,
) -> None:
    source = open_source(RegistrySpec(str(tmp_path)))
    stamp = source.stamp()
    assert stamp is not None
    before = stamp()

    assert apps_from(source) == []
    (tmp_path / "a.toml").write_text('[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\n')
    assert stamp() != before
    assert [app.id for app in apps_from(source)] == ["a"]


# -- an HTTP API ------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[RegistryApi]:
    with registry_api(token=TOKEN) as server:
        yield server


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REGISTRY_TOKEN", TOKEN)
    return "REGISTRY_TOKEN"


def test_an_api_list_of_apps_loads_with_the_token_sent(api: RegistryApi, token: str) -> None:
    api.serve_apps([SHOP, WIKI])

    assert load(api.url, token_env=token) == [
        App("shop", "command", {"argv": ["/usr/bin/printf", "shop"]}),
        App("wiki", "files", {"path": "/srv/wiki"}, enabled=False),
    ]
    assert api.auths() == [f"Bearer {TOKEN}"]
    assert api.requests[0]["accept"] == "application/json"


def test_an_api_object_with_apps_loads_and_null_is_a_field_not_given(
    api: RegistryApi, token: str
) -> None:
    api.serve_apps({"apps": [{**SHOP, "storage": None, "enabled": None}]})

    assert load(api.url, token_env=token) == [
        App("shop", "command", {"argv": ["/usr/bin/printf", "shop"]})
    ]


def test_a_refused_token_is_an_error_naming_its_variable_and_is_not_retried(
    api: RegistryApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_TOKEN", "wrong-token-value")

    assert problems(api.url, token_env="REGISTRY_TOKEN") == [
        f"{api.url}: the registry answered 401 Unauthorized: the token in $REGISTRY_TOKEN "
        "(registry_token_env) was refused"
    ]
    assert len(api.requests) == 1
    assert problems(api.url) == [
        f"{api.url}: the registry answered 401 Unauthorized: it needs a token: "
        "set registry_token_env to the variable holding it"
    ]


def test_a_token_variable_that_is_not_set_is_a_configuration_error(api: RegistryApi) -> None:
    assert problems(api.url, token_env="NO_SUCH_TOKEN_VARIABLE") == [
        "registry_token_env: $NO_SUCH_TOKEN_VARIABLE is not set or empty (the registry's token)"
    ]
    assert api.requests == []


@pytest.mark.parametrize("value", ["tok\r\nX-Injected: 1", "tok-ü"])
def test_a_token_a_header_cannot_carry_is_refused_before_any_request(
    api: RegistryApi, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("REGISTRY_TOKEN", value)

    assert problems(api.url, token_env="REGISTRY_TOKEN") == [
        "registry_token_env: $REGISTRY_TOKEN holds a line break or a non-ASCII character"
    ]
    assert api.requests == []


def test_a_5xx_is_retried_then_unavailable_in_one_line(api: RegistryApi, token: str) -> None:
    api.serve(500, b"<html>Internal Server Error</html>")

    message = unavailable(api.url, token_env=token)

    assert message == (
        f"{api.url}: cannot read the registry: it answered 500 Internal Server Error "
        f"({registry_sources.ATTEMPTS} attempts)"
    )
    assert len(api.requests) == registry_sources.ATTEMPTS


def test_an_api_that_recovers_within_the_attempts_is_read(api: RegistryApi, token: str) -> None:
    api.first = [Answer(503), Answer(502)]
    api.serve_apps([SHOP])

    assert [app.id for app in load(api.url, token_env=token)] == ["shop"]
    assert len(api.requests) == 3


def test_a_4xx_is_a_configuration_error_asked_once(api: RegistryApi, token: str) -> None:
    api.serve(404)

    assert problems(api.url, token_env=token) == [
        f"{api.url}: the registry answered 404 Not Found: check the registry URL"
    ]
    assert len(api.requests) == 1


def test_a_redirect_is_not_followed(api: RegistryApi, token: str) -> None:
    api.serve(302, Location="http://elsewhere.example/apps?token=leaked")

    assert problems(api.url, token_env=token) == [
        f"{api.url}: the registry answered 302 Found (a redirect to "
        "http://elsewhere.example/apps?token=***): set registry to the URL it names"
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            b"<html>maintenance</html>",
            "the answer is not JSON (Expecting value at line 1 column 1)",
        ),
        (b'{"apps": [', "the answer is not JSON (Expecting value at line 1 column 11)"),
        (b'"shop"', 'the answer must be a list of apps or an object {"apps": [...]}, got a string'),
        (
            b'{"apps": [], "next": "/v1/apps?page=2"}',
            "unknown top-level key 'next' (the answer is a list of apps or an object "
            '{"apps": [...]})',
        ),
        (
            b'{"items": []}',
            "unknown top-level key 'items' (the answer is a list of apps or an "
            'object {"apps": [...]})',
        ),
        (b"{}", "no 'apps' in the answer (it is a list of apps or an object {\"apps\": [...]})"),
    ],
)
def test_a_malformed_answer_is_a_configuration_error(
    api: RegistryApi, token: str, body: bytes, problem: str
) -> None:
    api.serve(200, body)

    assert problems(api.url, token_env=token) == [f"{api.url}: {problem}"]


def test_invalid_apps_in_an_answer_get_the_files_messages_naming_id_or_number(
    api: RegistryApi, token: str
) -> None:
    api.serve_apps(
        [
            SHOP,
            {"id": "crm", "kind": "ftp"},
            {"kind": "command", "argv": ["true"]},
            "wiki",
            {"id": "media", "kind": "files", "path": "srv/media"},
            {**SHOP, "argv": ["false"]},
        ]
    )

    assert problems(api.url, token_env=token) == [
        f"{api.url}: app 'crm': unknown kind 'ftp' (one of: {KIND_NAMES})",
        f"{api.url}: app #3: missing field 'id'",
        f"{api.url}: app #4: must be an object of the app's fields, got a string",
        f"{api.url}: app 'media': path: must be an absolute path in a registry that is not a "
        "file, got 'srv/media'",
        f"{api.url}: app 'shop': duplicate id 'shop' (first defined at {api.url}, app #1)",
    ]


def test_a_refused_connection_is_unavailable(token: str) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/apps"

    assert unavailable(url, token_env=token) == (
        f"{url}: cannot read the registry: Connection refused "
        f"({registry_sources.ATTEMPTS} attempts)"
    )


def test_a_server_that_never_answers_times_out_as_unavailable(token: str) -> None:
    with socket.socket() as sock:  # accepts connections (the kernel does), never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/apps"

        message = unavailable(url, token_env=token, timeout=0.5)

    assert message.startswith(f"{url}: cannot read the registry: no answer within 0.5s")


# -- HTTPS ------------------------------------------------------------------------------


def test_https_refuses_an_unknown_ca_and_trusts_the_ca_file_given(
    tmp_path: Path, token: str
) -> None:
    ca = make_ca(tmp_path / "ca")
    other = make_ca(tmp_path / "other", name="someone else's CA")
    with registry_api(token=TOKEN, tls=ca.server_context()) as api:
        api.serve_apps([SHOP])

        refused = problems(api.url, token_env=token)
        wrong = problems(api.url, token_env=token, ca_file=str(other.ca_file))
        assert api.requests == []  # the token never went to an untrusted server

        assert [app.id for app in load(api.url, token_env=token, ca_file=str(ca.ca_file))] == [
            "shop"
        ]
        assert api.auths() == [f"Bearer {TOKEN}"]

    assert refused == [
        f"{api.url}: TLS certificate not trusted (unable to get local issuer certificate): "
        "set registry_ca_file to the CA bundle that signed it"
    ]
    assert wrong == [
        f"{api.url}: TLS certificate not trusted (unable to get local issuer certificate): "
        "is registry_ca_file the CA that signed it?"
    ]


def test_a_ca_file_that_is_missing_or_not_pem_is_a_configuration_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    url = "https://127.0.0.1:9/v1/apps"

    assert problems(url, ca_file=str(tmp_path / "none.pem")) == [
        f"registry_ca_file: {tmp_path / 'none.pem'}: no such file"
    ]
    assert problems(url, ca_file=str(junk)) == [
        f"registry_ca_file: {junk}: not a PEM file of CA certificates"
    ]


# -- a query on Postgres ----------------------------------------------------------------


@pytest.fixture
def control_plane(database_url: str) -> str:
    """A control-plane database with an apps table, as a platform might keep one: its
    postgresql:// URL."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE fleet (name text PRIMARY KEY, engine text, active boolean,"
            " command text[], settings jsonb, team text)"
        )
        conn.execute(
            "INSERT INTO fleet VALUES"
            " ('shop', 'command', true, '{/usr/bin/printf,shop}', NULL, 'web'),"
            " ('wiki', 'files', false, NULL, '{\"path\": \"/srv/wiki\"}', 'docs'),"
            " ('crm', 'postgres', true, NULL,"
            '  \'{"dsn_env": "CRM_DSN", "storage": "file:///srv/crm-backups"}\', \'sales\')'
        )
    return as_url(database_url)


QUERY = (
    "SELECT name AS id, engine AS kind, active AS enabled, command AS argv,"
    " settings AS params FROM fleet ORDER BY name"
)


def test_each_row_of_the_query_is_an_app_with_params_merged_in(control_plane: str) -> None:
    assert load(control_plane, query=QUERY) == [
        App("crm", "postgres", {"dsn_env": "CRM_DSN"}, storage="file:///srv/crm-backups"),
        App("shop", "command", {"argv": ["/usr/bin/printf", "shop"]}),
        App("wiki", "files", {"path": "/srv/wiki"}, enabled=False),
    ]


def test_invalid_rows_get_the_files_messages(control_plane: str) -> None:
    label = f"{control_plane} (registry_query)"
    query = (
        "SELECT * FROM (VALUES"
        " ('shop', 'command', 'web', NULL::jsonb),"
        " (NULL, 'files', NULL, '{\"path\": \"/x\"}'),"
        ' (\'odd\', \'files\', NULL, \'{"kind": "files", "path": "/y"}\'),'
        " ('txt', 'files', NULL, to_jsonb('{}'::text))"
        ") AS t(id, kind, team, params)"
    )

    assert problems(control_plane, query=query) == [
        f"{label}: app 'odd': field 'kind' is given both as a column and in params",
        f"{label}: app 'txt': params must be a json or jsonb object, got a string (a text "
        "column: cast it, params::jsonb)",
        f"{label}: app 'shop': unknown field 'team' for kind 'command' (known: after, "
        "allow_empty, argv, before, drill_argv, enabled, id, kind, recipients, storage)",
        f"{label}: app 'shop': missing field 'argv' for kind 'command'",
        f"{label}: app #2: missing field 'id'",
    ]


def test_a_query_that_fails_is_a_configuration_error(control_plane: str) -> None:
    label = f"{control_plane} (registry_query)"

    assert problems(control_plane, query="SELECT * FROM no_such_table") == [
        f'{label}: registry_query failed: relation "no_such_table" does not exist'
    ]
    assert problems(control_plane, query="DELETE FROM fleet RETURNING name AS id") == [
        f"{label}: registry_query failed: cannot execute DELETE in a read-only transaction"
    ]
    with psycopg.connect(control_plane) as conn:  # the query wrote nothing
        assert conn.execute("SELECT count(*) FROM fleet").fetchone() == (3,)


def test_a_database_that_is_down_is_unavailable_and_its_password_never_shown() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://registry:pw-8d1e4b@127.0.0.1:{port}/control"

    message = unavailable(url, query="SELECT 1 AS id")

    assert "pw-8d1e4b" not in message
    assert message.startswith(
        f"postgresql://registry:***@127.0.0.1:{port}/control (registry_query): "
        "cannot read the registry: connection failed"
    )
    assert message.endswith(f"({registry_sources.ATTEMPTS} attempts)")


# -- a worker's live registry on an API -------------------------------------------------


def test_a_workers_registry_on_an_api_reloads_for_an_unknown_app_and_rides_out_an_outage(
    api: RegistryApi, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backupctl.registry import lookup

    monkeypatch.setattr(lookup, "RELOAD_EVERY", 0.0)  # no source stamp: reload when asked
    source = open_source(RegistrySpec(api.url, token_env=token))
    assert source.stamp() is None
    api.serve_apps([SHOP])
    live = lookup.LiveRegistry(
        apps_from(source), source=source.label, load=lambda: apps_from(source)
    )

    api.serve_apps([SHOP, {**SHOP, "id": "late"}])
    assert live.get("late") is not None  # added after the worker started
    api.serve(503)
    assert live.get("other") is None  # the reload fails...
    assert live.ids() == ["late", "shop"]  # ...and the apps it had stay
    api.serve_apps([])
    assert live.get("other") is None  # an empty answer is refused, too
    assert live.ids() == ["late", "shop"]
