"""The TOML app registry: valid files load, every malformed one is explained precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupctl.errors import EXIT_USAGE, ConfigError, RegistryError
from backupctl.registry import App, load_registry, validate_app_id

ID_RULE = "use 1-128 of a-z 0-9 . _ -, starting with a letter or digit"


def write(tmp_path: Path, text: str, name: str = "apps.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems(path: str) -> list[str]:
    with pytest.raises(RegistryError) as excinfo:
        load_registry(path)
    assert excinfo.value.exit_code == EXIT_USAGE
    assert str(excinfo.value) == "\n".join(excinfo.value.problems)
    return excinfo.value.problems


def test_load_registry_reads_a_valid_registry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[app]]
id = "wiki-uploads"
kind = "files"
path = "/srv/wiki/uploads"

[[app]]
id = "legacy-crm"
kind = "command"
argv = ["/usr/local/bin/crm-export", "--stdout"]
enabled = false

[[app]]
id = "a.b_c-1"
kind = "command"
argv = ["true"]
enabled = true
""",
    )

    assert load_registry(path) == [
        App("wiki-uploads", "files", {"path": "/srv/wiki/uploads"}, True),
        App("legacy-crm", "command", {"argv": ["/usr/local/bin/crm-export", "--stdout"]}, False),
        App("a.b_c-1", "command", {"argv": ["true"]}, True),
    ]


def test_an_empty_registry_has_no_apps(tmp_path: Path) -> None:
    assert load_registry(write(tmp_path, "")) == []


def test_relative_path_is_resolved_against_the_registry_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, '[[app]]\nid = "up"\nkind = "files"\npath = "../data/uploads"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    (app,) = load_registry(path)

    assert app.params["path"] == str(tmp_path / "data" / "uploads")


def test_relative_path_with_a_relative_registry_path_still_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    write(tmp_path / "etc", '[[app]]\nid = "up"\nkind = "files"\npath = "uploads"\n')
    monkeypatch.chdir(tmp_path)

    (app,) = load_registry("etc/apps.toml")

    assert app.params["path"] == str(tmp_path / "etc" / "uploads")


def test_duplicate_ids_name_both_places(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[[app]]
id = "shop"
kind = "command"
argv = ["true"]

[[app]]
id = "shop"
kind = "files"
path = "data"
""",
    )

    assert problems(path) == [
        f"{path}:6: app 'shop': duplicate id 'shop' (first defined at {path}:1)"
    ]


def test_unknown_kind_is_named_with_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '\n[[app]]\nid = "shop"\nkind = "oracle"\n')

    assert problems(path) == [
        f"{path}:2: app 'shop': unknown kind 'oracle' "
        "(one of: command, files, mysql, postgres, sqlite)"
    ]


def test_kind_that_is_not_a_string_is_an_unknown_kind(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "shop"\nkind = 3\n')

    assert problems(path) == [
        f"{path}:1: app 'shop': unknown kind 3 (one of: command, files, mysql, postgres, sqlite)"
    ]


def test_missing_id_names_the_app_by_its_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\n\n'
        '[[app]]\nkind = "command"\nargv = ["true"]\n',
    )

    assert problems(path) == [f"{path}:6: app #2: missing field 'id'"]


def test_missing_kind_lists_the_kinds(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "shop"\n')

    assert problems(path) == [
        f"{path}:1: app 'shop': missing field 'kind' "
        "(one of: command, files, mysql, postgres, sqlite)"
    ]


def test_missing_kind_specific_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "shop"\nkind = "files"\n')

    assert problems(path) == [f"{path}:1: app 'shop': missing field 'path' for kind 'files'"]


def test_unknown_field_lists_the_fields_of_that_kind(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "up"\nkind = "files"\npath = "x"\npth = "y"\n')

    assert problems(path) == [
        f"{path}:1: app 'up': unknown field 'pth' for kind 'files'"
        " (known: after, allow_empty, before, enabled, id, kind, path, recipients, storage)"
    ]


def test_a_field_of_another_kind_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "c"\nkind = "command"\nargv = ["true"]\npath = "x"\n')

    assert problems(path) == [
        f"{path}:1: app 'c': unknown field 'path' for kind 'command' "
        "(known: after, allow_empty, argv, before, drill_argv, enabled, id, kind, "
        "recipients, storage)"
    ]


@pytest.mark.parametrize(
    "bad_id",
    [
        "Shop",
        ".hidden",
        "../x",
        "a/b",
        "-shop",
        "_shop",
        "",
        "shop app",
        "a" * 129,
    ],
)
def test_bad_ids_are_rejected_with_the_rule(tmp_path: Path, bad_id: str) -> None:
    path = write(tmp_path, f'[[app]]\nid = "{bad_id}"\nkind = "command"\nargv = ["true"]\n')

    assert problems(path) == [f"{path}:1: app {bad_id!r}: id {bad_id!r} is not valid: {ID_RULE}"]


def test_an_id_of_128_characters_is_the_longest_allowed(tmp_path: Path) -> None:
    longest = "a" * 128
    path = write(tmp_path, f'[[app]]\nid = "{longest}"\nkind = "command"\nargv = ["true"]\n')

    assert [app.id for app in load_registry(path)] == [longest]


def test_id_that_is_not_a_string_is_reported_and_the_app_named_by_position(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, '[[app]]\nid = 7\nkind = "command"\nargv = ["true"]\n')

    assert problems(path) == [f"{path}:1: app #1: id must be a string, got 7"]


def test_an_id_with_a_trailing_newline_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "shop\\n"\nkind = "command"\nargv = ["true"]\n')

    assert problems(path) == [f"{path}:1: app 'shop\\n': id 'shop\\n' is not valid: {ID_RULE}"]


@pytest.mark.parametrize("value", ["shop", "0day", "a", "a.b", "a_b-c.d"])
def test_validate_app_id_accepts_good_ids(value: str) -> None:
    assert validate_app_id(value) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            '"pg_dumpall"',
            'argv: must be a non-empty list of strings, e.g. ["pg_dumpall", "--clean"]',
        ),
        ("[]", 'argv: must be a non-empty list of strings, e.g. ["pg_dumpall", "--clean"]'),
        ('["x", 1]', 'argv: must be a non-empty list of strings, e.g. ["pg_dumpall", "--clean"]'),
        ('[""]', "argv: the program (first item) must not be empty"),
    ],
)
def test_argv_must_be_a_non_empty_list_of_strings(tmp_path: Path, argv: str, message: str) -> None:
    path = write(tmp_path, f'[[app]]\nid = "c"\nkind = "command"\nargv = {argv}\n')

    assert problems(path) == [f"{path}:1: app 'c': {message}"]


def test_empty_path_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "up"\nkind = "files"\npath = ""\n')

    assert problems(path) == [f"{path}:1: app 'up': path: must be a non-empty string"]


@pytest.mark.parametrize(("value", "shown"), [('"yes"', "'yes'"), ("1", "1")])
def test_enabled_must_be_a_boolean(tmp_path: Path, value: str, shown: str) -> None:
    path = write(
        tmp_path, f'[[app]]\nid = "c"\nkind = "command"\nargv = ["true"]\nenabled = {value}\n'
    )

    assert problems(path) == [f"{path}:1: app 'c': enabled must be true or false, got {shown}"]


def test_invalid_toml_gives_the_parsers_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[app]]\nid = "a"\nkind = \n')

    assert problems(path) == [f"{path}: not valid TOML: Invalid value (at line 3, column 8)"]


def test_missing_registry_file_is_reported(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")

    assert problems(path) == [f"{path}: no such registry file"]


def test_registry_path_that_is_a_directory_is_a_folder_of_registry_files(
    tmp_path: Path,
) -> None:
    assert load_registry(str(tmp_path)) == []
    write(tmp_path, '[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\n', "team.toml")
    assert [app.id for app in load_registry(str(tmp_path))] == ["a"]


def test_registry_folder_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    assert problems(f"{tmp_path}/apps.d/") == [f"{tmp_path}/apps.d/: no such registry folder"]


def test_registry_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "apps.toml"
    path.write_bytes(b'[[app]]\nid = "caf\xe9"\n')

    assert problems(str(path)) == [f"{path}: not valid UTF-8 text"]


def test_unknown_top_level_key_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, 'apps = 1\n\n[[app]]\nid = "c"\nkind = "command"\nargv = ["true"]\n')

    assert problems(path) == [f"{path}: apps: unknown top-level key (apps go in [[app]] tables)"]


def test_app_that_is_not_a_list_of_tables_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "app = 3\n")

    assert problems(path) == [f"{path}: 'app' must be a list of [[app]] tables"]


def test_several_problems_in_several_apps_are_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """apps = 1

[[app]]
id = "shop"
kind = "command"
argv = ["true"]

[[app]]
id = "shop"
kind = "files"
path = "data"

[[app]]
kind = "postgres"

[[app]]
id = "Shop"
kind = "command"
argv = "pg_dumpall"
enabled = "yes"
pth = 1
""",
    )

    assert problems(path) == [
        f"{path}: apps: unknown top-level key (apps go in [[app]] tables)",
        f"{path}:8: app 'shop': duplicate id 'shop' (first defined at {path}:3)",
        f"{path}:13: app #3: missing field 'id'",
        f"{path}:13: app #3: give exactly one of dsn, dsn_env",
        f"{path}:16: app 'Shop': id 'Shop' is not valid: {ID_RULE}",
        f"{path}:16: app 'Shop': enabled must be true or false, got 'yes'",
        f"{path}:16: app 'Shop': argv: must be a non-empty list of strings, "
        'e.g. ["pg_dumpall", "--clean"]',
        f"{path}:16: app 'Shop': unknown field 'pth' for kind 'command' "
        "(known: after, allow_empty, argv, before, drill_argv, enabled, id, kind, "
        "recipients, storage)",
    ]


def test_registry_error_is_a_config_error() -> None:
    assert issubclass(RegistryError, ConfigError)


@pytest.mark.parametrize(
    "entry",
    [
        'kind = "command"\nargv = ["true"]',
        'kind = "files"\npath = "/srv"',
        'kind = "postgres"\ndsn_env = "X"',
    ],
    ids=["command", "files", "postgres"],
)
def test_allow_empty_is_a_field_of_every_kind(tmp_path: Path, entry: str) -> None:
    path = write(tmp_path, f'[[app]]\nid = "a"\n{entry}\nallow_empty = true\n')

    [app] = load_registry(path)

    assert app.allow_empty is True
    assert "allow_empty" not in app.params


def test_allow_empty_defaults_to_false_and_must_be_a_boolean(tmp_path: Path) -> None:
    plain = write(tmp_path, '[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\n')
    assert load_registry(plain)[0].allow_empty is False

    path = write(
        tmp_path, '[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\nallow_empty = "yes"\n'
    )
    assert problems(path) == [f"{path}:1: app 'a': allow_empty must be true or false, got 'yes'"]


def test_any_kind_takes_before_and_after_hooks_as_argv_lists(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[app]]\nid = "up"\nkind = "files"\npath = "/srv/up"\n'
        'before = ["/usr/local/bin/quiesce", "--app", "up"]\nafter = ["resume", "up"]\n',
    )

    [app] = load_registry(path)

    assert app.before == ("/usr/local/bin/quiesce", "--app", "up")
    assert app.after == ("resume", "up")
    assert "before" not in app.params and "after" not in app.params


def test_an_app_without_hooks_has_none() -> None:
    assert App("a", "command", {"argv": ["true"]}).before is None


LIST = 'must be a non-empty list of strings, e.g. ["pg_dumpall", "--clean"]'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"/usr/local/bin/quiesce --app shop"', LIST),
        ("[]", LIST),
        ('["quiesce", 3]', LIST),
        ('["quiesce", ""]', "every item must be a non-empty string"),
        ('[""]', "the program (first item) must not be empty"),
        (
            '["bin/quiesce"]',
            "the program 'bin/quiesce' must be an absolute path or a name looked up on PATH",
        ),
    ],
)
def test_a_hook_must_be_a_list_of_non_empty_strings(
    tmp_path: Path, value: str, message: str
) -> None:
    path = write(
        tmp_path,
        f'[[app]]\nid = "c"\nkind = "command"\nargv = ["true"]\nbefore = {value}\n'
        f"after = {value}\n",
    )

    assert problems(path) == [
        f"{path}:1: app 'c': before: {message}",
        f"{path}:1: app 'c': after: {message}",
    ]
