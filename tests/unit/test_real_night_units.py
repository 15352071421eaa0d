"""Pieces of surviving a real night that need no server: the registry guard and the
live registry, per-app validation, the child environment, redaction of AWS headers,
files that no planted link can redirect, artifact names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backupctl import atomic
from backupctl.artifacts import parse_artifact_key
from backupctl.errors import RegistryError
from backupctl.kinds import child_environment
from backupctl.redact import redact_text
from backupctl.registry import App, load_registry
from backupctl.registry.guard import no_apps_problem, shrink_problem
from backupctl.registry.lookup import LiveRegistry, StaticApps, file_stamp
from backupctl.storage import storage_url_problem


def apps(*ids: str, enabled: bool = True) -> list[App]:
    return [App(i, "command", {"argv": ["true"]}, enabled=enabled) for i in ids]


# -- the guard -----------------------------------------------------------------------


def test_no_enabled_apps_is_a_problem_naming_the_source() -> None:
    assert no_apps_problem([], "/etc/apps.toml") == (
        "/etc/apps.toml: the registry lists no enabled apps (no apps at all); nothing was planned"
    )
    assert "2 apps, all disabled" in str(no_apps_problem(apps("a", "b", enabled=False), "x"))
    assert no_apps_problem(apps("a"), "x") is None


@pytest.mark.parametrize(
    ("before", "missing", "refused"),
    [
        (8, 2, False),  # 25% exactly: not more than max_shrink
        (8, 3, True),
        (3, 1, False),  # one app missing never trips it
        (2, 2, True),
        (100, 25, False),
        (100, 26, True),
    ],
)
def test_a_shrink_is_refused_past_max_shrink_and_more_than_one_app(
    before: int, missing: int, refused: bool
) -> None:
    problem = shrink_problem(
        source="apps.toml",
        enabled_now=before - missing,
        before=before,
        missing=missing,
        examples=["a", "b"],
        max_shrink=0.25,
        since="night 2026-11-28",
    )
    assert (problem is not None) == refused
    if problem:
        assert f"but night 2026-11-28 had {before}: {missing} of those are missing" in problem


def test_the_live_registry_reloads_for_an_unknown_app_and_when_its_file_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "apps.toml"
    entry = '[[app]]\nid = "{}"\nkind = "command"\nargv = ["true"]\n'
    path.write_text(entry.format("a"))
    live = LiveRegistry(
        load_registry(str(path)),
        source=str(path),
        load=lambda: load_registry(str(path)),
        stamp=file_stamp(str(path)),
    )
    assert live.get("b") is None
    path.write_text(entry.format("a") + entry.format("b"))
    assert live.get("b") is not None  # unknown: reloaded at once
    assert live.ids() == ["a", "b"]


def test_the_live_registry_keeps_its_apps_when_a_reload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    entry = '[[app]]\nid = "{}"\nkind = "command"\nargv = ["true"]\n'
    path.write_text("".join(entry.format(i) for i in "abcd"))
    loads: list[int] = []

    def load() -> list[App]:
        loads.append(1)
        return load_registry(str(path))

    live = LiveRegistry(
        load_registry(str(path)), source=str(path), load=load, stamp=file_stamp(str(path))
    )
    for text in ("", "[[app]\n", entry.format("a")):  # empty, malformed, shrunk by 3 of 4
        path.write_text(text)
        assert live.get("zz") is None
        assert live.ids() == ["a", "b", "c", "d"]
    assert len(loads) == 3  # each version read once...
    for _ in range(5):
        assert live.get("zz") is None
    assert len(loads) == 3  # ...and not again while it stays as it is


def test_static_apps_know_every_apps_secret_variable_disabled_ones_too() -> None:
    found = StaticApps(
        [
            App("shop", "postgres", {"dsn_env": "SHOP_DSN"}),
            App("old", "postgres", {"dsn_env": "OLD_DSN"}, enabled=False),
        ]
    )
    assert found.secret_env() == {"SHOP_DSN", "OLD_DSN"}
    assert found.get("old") is None


# -- per-app validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file://nas/backups", "names host 'nas'"),
        ("file://", "must name an absolute folder"),
        ("file:///", "must name an absolute folder"),
        ("s3://", "names no bucket"),
        ("s3:///prefix", "names no bucket"),
        ("ftp://host/x", "must be a file:// or s3:// URL"),
        ("/var/backups", "must be a file:// or s3:// URL"),
    ],
)
def test_storage_urls_are_checked_for_their_form(url: str, problem: str) -> None:
    assert problem in str(storage_url_problem(url))


@pytest.mark.parametrize(
    "url", ["file:///var/backups", "file://localhost/var/b", "s3://bucket", "s3://b/p/q"]
)
def test_good_storage_urls_pass(url: str) -> None:
    assert storage_url_problem(url) is None


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "apps.toml"
    path.write_text(text)
    with pytest.raises(RegistryError) as excinfo:
        load_registry(str(path))
    return excinfo.value.problems


def test_a_per_app_storage_url_is_validated_at_load_naming_file_line_and_app(
    tmp_path: Path,
) -> None:
    text = '[[app]]\nid = "nas"\nkind = "command"\nargv = ["true"]\nstorage = "file://nas/b"\n'
    [problem] = _problems(tmp_path, text)
    assert problem.startswith(f"{tmp_path / 'apps.toml'}:1: app 'nas': storage: ")
    assert "three slashes" in problem


def test_a_relative_program_path_is_refused(tmp_path: Path) -> None:
    text = '[[app]]\nid = "a"\nkind = "command"\nargv = ["bin/export"]\n'
    [problem] = _problems(tmp_path, text)
    assert "must be an absolute path or a name looked up on PATH" in problem


def test_a_malformed_dsn_is_refused_without_showing_it(tmp_path: Path) -> None:
    text = '[[app]]\nid = "a"\nkind = "postgres"\ndsn = "host=db password=hunter2 nonsense"\n'
    [problem] = _problems(tmp_path, text)
    assert "is not a valid PostgreSQL connection string" in problem
    assert "hunter2" not in problem


# -- the child environment -------------------------------------------------------------


def test_a_child_gets_our_environment_minus_backupctls_and_every_apps_secret() -> None:
    base = {
        "PATH": "/bin",
        "HOME": "/root",
        "BACKUPCTL_DATABASE_URL": "postgresql://x:pw@db/l",
        "SHOP_DSN": "postgresql://shop:pw@db/shop",
        "CRM_DSN": "postgresql://crm:pw@db/crm",
        "PGPASSWORD": "the-ledgers",
    }
    assert child_environment({"SHOP_DSN", "CRM_DSN"}, base) == {"PATH": "/bin", "HOME": "/root"}


# -- redaction of what botocore logs ------------------------------------------------------


def test_aws_request_headers_and_presigned_urls_are_masked() -> None:
    logged = (
        "headers={'X-Amz-Date': b'20261201T010203Z', 'X-Amz-Security-Token': b'IQoJtoken=/+x', "
        "'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261201/us-east-1/s3/"
        "aws4_request, SignedHeaders=host, Signature=abcdef0123'}\n"
        "x-amz-security-token:IQoJtoken=/+x\n"
        "Authorization: Bearer eyJhbGciOi.secret\n"
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20261201&X-Amz-Security-Token=IQoJtoken"
        "&X-Amz-Signature=abcdef0123"
    )
    shown = redact_text(logged)
    for secret in ("IQoJtoken", "AKIAEXAMPLE", "abcdef0123", "eyJhbGciOi"):
        assert secret not in shown, shown
    assert "'X-Amz-Date': b'20261201T010203Z'" in shown
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in shown


# -- files no planted link can redirect ------------------------------------------------


def test_a_link_planted_at_the_next_temporary_name_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    tags = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr("backupctl.atomic.secrets.token_hex", lambda _n: next(tags))
    final = tmp_path / "backupctl.prom"
    (tmp_path / ".backupctl.prom.aaaaaaaaaaaa.tmp").symlink_to(victim)

    atomic.write_atomically(final, b"metrics\n")

    assert victim.read_text() == "precious"
    assert final.read_bytes() == b"metrics\n"
    assert oct(final.stat().st_mode & 0o777) == oct(0o644)


def test_publishing_a_new_file_refuses_a_name_taken_meanwhile(tmp_path: Path) -> None:
    fd, tmp = atomic.create_temp(tmp_path / "out")
    os.close(fd)
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        atomic.publish_new(tmp, tmp_path / "out")
    assert not (tmp_path / "elsewhere").exists()


# -- artifact names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "backup_id"),
    [
        ("shop/2026-11-29/shop-2026-11-29-b17-a1.tar.zst", 17),
        ("shop/adhoc/shop-2026-11-29-b4711-a1.out.zst", 4711),
        ("shop/2026-11-29/.shop-2026-11-29-b17-a2.pgdump.zst.0123456789ab.tmp", 17),
        ("shop/2026-11-29/notes.txt", None),
        ("shop/2026-11-29/other-2026-11-29-b17-a1.tar.zst", None),  # another app's name
        ("README", None),
    ],
)
def test_only_names_backupctl_writes_are_artifacts(key: str, backup_id: int | None) -> None:
    parsed = parse_artifact_key(key)
    assert (parsed[1] if parsed else None) == backup_id
    assert parsed is None or parsed[0] == "shop"


def test_counted_nouns_are_singular_only_for_exactly_one() -> None:
    from backupctl.wording import plural

    assert [plural(n, "app") for n in (0, 1, 2)] == ["0 apps", "1 app", "2 apps"]
    assert plural(1, "poison message") == "1 poison message"
    assert plural(3, "was") == "3 were"
    assert plural(2, "analysis", "analyses") == "2 analyses"
