"""Settings: defaults < file < BACKUPCTL_* environment < flags, all problems at once."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backupctl import config
from backupctl.config import load_settings
from backupctl.durations import WHOLE_DAY, Window
from backupctl.errors import EXIT_USAGE, ConfigError


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A /etc/backupctl/backupctl.toml on the test machine must not leak into the tests."""
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent" / "backupctl.toml"))


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return excinfo.value.problems


def test_load_settings_without_file_env_or_flags_gives_the_documented_defaults() -> None:
    settings = load_settings(None, env={})

    assert settings.database_url is None
    assert settings.database_schema == "backupctl"
    assert settings.timezone == ZoneInfo("UTC")
    assert settings.registry == "/etc/backupctl/apps.toml"
    assert settings.storage is None
    assert settings.run.mode == "direct"
    assert settings.run.parallel == 4
    assert settings.run.max_attempts == 3
    assert settings.run.timeout == 7200.0
    assert settings.run.lease == 300.0
    assert settings.run.window == WHOLE_DAY
    assert settings.run.retry_wait == 30.0
    assert settings.queue_url is None
    assert settings.retention == {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}
    assert settings.ping_url is None
    assert settings.metrics_file is None
    assert settings.config_file is None
    assert settings.state_dir is None
    assert set(settings.origins.values()) == {"default"}


def test_state_dir_holds_the_embedded_ledger_and_the_default_backups(tmp_path: Path) -> None:
    from backupctl.context import state_dir, storage_url

    path = write(tmp_path / "backupctl.toml", 'state_dir = "state"\n')
    settings = load_settings(path, env={})
    assert settings.state_dir == str(tmp_path / "state")  # relative to the file
    assert state_dir(settings) == tmp_path / "state"
    assert storage_url(settings) == (tmp_path / "state" / "backups").as_uri()

    env = load_settings(None, env={"BACKUPCTL_STATE_DIR": "/var/lib/backupctl"})
    assert state_dir(env) == Path("/var/lib/backupctl")
    configured = load_settings(
        None, env={"BACKUPCTL_STATE_DIR": "/var/lib/backupctl", "BACKUPCTL_STORAGE": "s3://b/p"}
    )
    assert storage_url(configured) == "s3://b/p"


def test_load_settings_reads_every_documented_key_from_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "backupctl.toml",
        """
database_url = "postgresql://backupctl@db.internal/backupctl"
database_schema = "ledger"
timezone = "Europe/Amsterdam"
registry = "/srv/apps.toml"
storage = "s3://acme-backups/nightly"

[run]
mode = "enqueue"
parallel = 8
max_attempts = 5
timeout = "1h30m"
lease = "90s"
window = "01:00-06:00"
retry_wait = 10

[queue]
url = "https://sqs.eu-west-1.amazonaws.com/123456789012/backups"

[retention]
keep_daily = 1
keep_weekly = 0
keep_monthly = 24

[monitoring]
ping_url = "https://hc-ping.com/uuid"
metrics_file = "/var/lib/backupctl.prom"
""",
    )

    settings = load_settings(path, env={})

    assert settings.database_url == "postgresql://backupctl@db.internal/backupctl"
    assert settings.database_schema == "ledger"
    assert settings.timezone == ZoneInfo("Europe/Amsterdam")
    assert settings.registry == "/srv/apps.toml"
    assert settings.storage == "s3://acme-backups/nightly"
    assert settings.run.mode == "enqueue"
    assert settings.run.parallel == 8
    assert settings.run.max_attempts == 5
    assert settings.run.timeout == 5400.0
    assert settings.run.lease == 90.0
    assert settings.run.window == Window(time(1), time(6))
    assert settings.run.retry_wait == 10.0
    assert settings.queue_url == "https://sqs.eu-west-1.amazonaws.com/123456789012/backups"
    assert settings.retention == {"keep_daily": 1, "keep_weekly": 0, "keep_monthly": 24}
    assert settings.ping_url == "https://hc-ping.com/uuid"
    assert settings.metrics_file == "/var/lib/backupctl.prom"
    assert settings.config_file == path
    assert settings.origins["run.parallel"] == f"file {path}"


def test_environment_overrides_the_file_and_flags_override_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path / "backupctl.toml",
        'database_url = "postgresql://file/db"\n[run]\nparallel = 2\nmax_attempts = 7\n',
    )
    env = {
        "BACKUPCTL_DATABASE_URL": "postgresql://env/db",
        "BACKUPCTL_RUN_PARALLEL": "6",
        "BACKUPCTL_RUN_MAX_ATTEMPTS": "9",
    }

    settings = load_settings(path, env=env, flags={"run.parallel": 12, "run.max_attempts": None})

    assert settings.database_url == "postgresql://env/db"
    assert settings.run.parallel == 12
    assert settings.run.max_attempts == 9  # a flag left unset (None) does not override
    assert settings.origins["database_url"] == "env BACKUPCTL_DATABASE_URL"
    assert settings.origins["run.parallel"] == "flag"
    assert settings.origins["run.max_attempts"] == "env BACKUPCTL_RUN_MAX_ATTEMPTS"


def test_the_file_overrides_the_defaults_and_keeps_keys_it_does_not_set(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", "[run]\nparallel = 2\n")

    settings = load_settings(path, env={})

    assert settings.run.parallel == 2
    assert settings.run.max_attempts == 3
    assert settings.origins["run.max_attempts"] == "default"


def test_environment_values_are_parsed_like_file_values() -> None:
    env = {
        "BACKUPCTL_TIMEZONE": "Europe/Amsterdam",
        "BACKUPCTL_RUN_TIMEOUT": "2h",
        "BACKUPCTL_RUN_WINDOW": "22:00-04:00",
        "BACKUPCTL_RETENTION_KEEP_DAILY": "0",
        "BACKUPCTL_QUEUE_URL": "https://queue.example/q",
        "BACKUPCTL_RUN_MODE": "enqueue",
        "BACKUPCTL_DATABASE_URL": "",
    }

    settings = load_settings(None, env=env)

    assert settings.timezone == ZoneInfo("Europe/Amsterdam")
    assert settings.run.timeout == 7200.0
    assert settings.run.window == Window(time(22), time(4))
    assert settings.retention["keep_daily"] == 0
    assert settings.run.mode == "enqueue"
    assert settings.queue_url == "https://queue.example/q"
    assert settings.database_url is None  # empty means "embedded"


def test_config_file_can_be_named_by_backupctl_config(tmp_path: Path) -> None:
    path = write(tmp_path / "via-env.toml", "[run]\nparallel = 3\n")

    settings = load_settings(None, env={"BACKUPCTL_CONFIG": path})

    assert settings.run.parallel == 3
    assert settings.config_file == path


def test_explicit_path_wins_over_backupctl_config(tmp_path: Path) -> None:
    explicit = write(tmp_path / "explicit.toml", "[run]\nparallel = 5\n")
    other = write(tmp_path / "other.toml", "[run]\nparallel = 9\n")

    settings = load_settings(explicit, env={"BACKUPCTL_CONFIG": other})

    assert settings.run.parallel == 5


def test_relative_registry_in_a_file_is_resolved_against_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder / "backupctl.toml", 'registry = "apps/apps.toml"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    settings = load_settings(path, env={})

    assert settings.registry == str(folder / "apps" / "apps.toml")


def test_relative_registry_given_by_a_relative_config_path_is_still_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf" / "backupctl.toml", 'registry = "../apps.toml"\n')
    monkeypatch.chdir(tmp_path)

    settings = load_settings("conf/backupctl.toml", env={})

    assert settings.registry == str(tmp_path / "apps.toml")


def test_absolute_registry_in_a_file_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", 'registry = "/srv/registry/apps.toml"\n')

    assert load_settings(path, env={}).registry == "/srv/registry/apps.toml"


def test_relative_registry_from_the_environment_is_not_rewritten(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", 'registry = "apps.toml"\n')

    settings = load_settings(path, env={"BACKUPCTL_REGISTRY": "mine.toml"})

    assert settings.registry == "mine.toml"


def test_registry_url_in_a_file_is_not_treated_as_a_relative_path(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", 'registry = "https://example.com/apps.json"\n')

    assert load_settings(path, env={}).registry == "https://example.com/apps.json"


def test_registry_settings_of_each_form_load(tmp_path: Path) -> None:
    path = write(
        tmp_path / "backupctl.toml",
        'registry = "https://inventory.internal/v1/apps"\n'
        'registry_token_env = "INVENTORY_TOKEN"\n'
        'registry_ca_file = "ca/internal.pem"\n'
        'registry_timeout = "10s"\n',
    )

    values = load_settings(path, env={}).values

    assert values["registry_token_env"] == "INVENTORY_TOKEN"
    assert values["registry_ca_file"] == str(tmp_path / "ca" / "internal.pem")
    assert values["registry_timeout"] == 10.0
    sql = load_settings(
        None,
        env={
            "BACKUPCTL_REGISTRY": "postgresql://reader@cp.internal/platform",
            "BACKUPCTL_REGISTRY_QUERY": "SELECT slug AS id, 'files' AS kind FROM services",
        },
    )
    assert sql.registry == "postgresql://reader@cp.internal/platform"
    folder = write(tmp_path / "folder.toml", 'registry = "apps.d/"\n')
    assert load_settings(folder, env={}).registry == f"{tmp_path}/apps.d/"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"BACKUPCTL_REGISTRY": "ftp://u:secret-pw@host/apps"},
            "BACKUPCTL_REGISTRY: registry: a URL must start with http://, https:// or "
            "postgresql://; anything else is a file or folder path",
        ),
        (
            {"BACKUPCTL_REGISTRY": "https://u:secret-pw@host/apps"},
            "BACKUPCTL_REGISTRY: registry: an http(s) registry URL must not hold credentials: "
            "give its token in a variable named by registry_token_env",
        ),
        ({"BACKUPCTL_REGISTRY": "https:///apps"}, "an http(s) URL needs a host"),
        ({"BACKUPCTL_REGISTRY": "https://host:port/apps"}, "registry: is not a valid URL"),
        (
            {"BACKUPCTL_REGISTRY": "postgresql://u:secret-pw@db/cp"},
            "registry: a postgresql:// registry needs registry_query",
        ),
        (
            {"BACKUPCTL_REGISTRY_QUERY": "SELECT 1"},
            "registry_query: only for a postgresql:// registry",
        ),
        (
            {"BACKUPCTL_REGISTRY_TOKEN_ENV": "TOKEN"},
            "registry_token_env: only for an http(s):// registry",
        ),
        (
            {"BACKUPCTL_REGISTRY": "/srv/apps.d/", "BACKUPCTL_REGISTRY_CA_FILE": "/ca.pem"},
            "registry_ca_file: only for an http(s):// registry",
        ),
        (
            {"BACKUPCTL_REGISTRY": "https://h/a", "BACKUPCTL_REGISTRY_TOKEN_ENV": "$TOKEN"},
            "must be the name of an environment variable, got '$TOKEN'",
        ),
    ],
)
def test_registry_settings_that_do_not_fit_are_refused_without_the_password(
    env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, env=env)

    assert len(problems_of(excinfo)) == 1
    assert problem in problems_of(excinfo)[0]
    assert "secret-pw" not in str(excinfo.value)


def test_load_settings_reports_every_problem_at_once_naming_file_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "backupctl.toml",
        """
colour = "blue"
timezone = "Mars/Base"
storage = "ftp://backups.example.com/x"

[run]
parallel = "four"
timeout = "forever"
window = "25:00-06:00"
paralel = 3

[retention]
keep_daily = -1
""",
    )

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [
        f"{path}: colour: unknown key",
        f"{path}: [run] paralel: unknown key "
        "(known: mode, parallel, max_attempts, timeout, lease, window, retry_wait, "
        "retry_wait_max, max_shrink, min_size_ratio)",
        f"{path}: timezone: unknown timezone 'Mars/Base' (try Europe/Amsterdam or UTC)",
        f"{path}: storage: must be a file:// or s3:// URL, got 'ftp://backups.example.com/x'",
        f"{path}: [run] parallel: must be a whole number of at least 1, got 'four'",
        f"{path}: [run] timeout: 'forever' is not a duration (try 90s, 5m, 2h or 1h30m)",
        f"{path}: [run] window: '25:00' is not a time of day (HH:MM)",
        f"{path}: [retention] keep_daily: must be a whole number of at least 0, got -1",
    ]
    assert str(excinfo.value) == "\n".join(problems_of(excinfo))
    assert excinfo.value.exit_code == EXIT_USAGE


def test_problems_from_environment_and_flags_name_the_variable_and_the_flag() -> None:
    env = {"BACKUPCTL_RUN_PARALLEL": "0", "BACKUPCTL_RUN_LEASE": "0s"}
    flags = {"run.max_attempts": "x", "run.window": "1-2"}

    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, env=env, flags=flags)

    assert problems_of(excinfo) == [
        "BACKUPCTL_RUN_PARALLEL: [run] parallel: must be a whole number of at least 1, got 0",
        "--max-attempts: [run] max_attempts: must be a whole number of at least 1, got 'x'",
        "BACKUPCTL_RUN_LEASE: [run] lease: must be longer than zero",
        "--window: [run] window: '1' is not a time of day (HH:MM)",
    ]


def test_bad_timezone_from_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, env={"BACKUPCTL_TIMEZONE": "Europe/Atlantis"})

    assert problems_of(excinfo) == [
        "BACKUPCTL_TIMEZONE: timezone: unknown timezone 'Europe/Atlantis' "
        "(try Europe/Amsterdam or UTC)"
    ]


@pytest.mark.parametrize("zone", ["../../etc/passwd", "/etc/localtime", "Europe/"])
def test_timezone_that_is_a_path_is_rejected_as_unknown(zone: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, env={"BACKUPCTL_TIMEZONE": zone})

    assert problems_of(excinfo) == [
        f"BACKUPCTL_TIMEZONE: timezone: unknown timezone {zone!r} (try Europe/Amsterdam or UTC)"
    ]


def test_bad_schema_name_is_rejected() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, env={"BACKUPCTL_DATABASE_SCHEMA": "Bad-Schema"})

    assert problems_of(excinfo) == [
        "BACKUPCTL_DATABASE_SCHEMA: database_schema: "
        "must be a lower-case SQL identifier such as 'backupctl'"
    ]


def test_a_section_that_is_not_a_table_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", 'run = "fast"\n')

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [f"{path}: [run] must be a table"]


def test_a_section_key_at_top_level_is_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", "parallel = 3\n")

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [f"{path}: parallel: unknown key"]


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [f"{path}: no such configuration file"]


def test_missing_config_file_named_by_backupctl_config_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")

    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, env={"BACKUPCTL_CONFIG": path})

    assert problems_of(excinfo) == [f"{path}: no such configuration file"]


def test_config_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(str(tmp_path), env={})

    assert problems_of(excinfo) == [f"{tmp_path}: is a directory, not a configuration file"]


def test_invalid_toml_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", 'timezone = "UTC"\n[run\nparallel = 2\n')

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [
        f"{path}: not valid TOML: Expected ']' at the end of a table declaration "
        "(at line 2, column 5)"
    ]


def test_invalid_toml_and_a_bad_environment_value_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", "parallel = = 2\n")

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={"BACKUPCTL_RUN_TIMEOUT": "soon"})

    problems = problems_of(excinfo)
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}: not valid TOML: ")
    assert "(at line 1, column " in problems[0]
    assert problems[1] == (
        "BACKUPCTL_RUN_TIMEOUT: [run] timeout: 'soon' is not a duration (try 90s, 5m, 2h or 1h30m)"
    )


def test_enqueue_mode_without_a_queue_url_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", '[run]\nmode = "enqueue"\n')

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [
        "[run] mode = 'enqueue' needs [queue] url (or BACKUPCTL_QUEUE_URL)"
    ]


def test_enqueue_mode_with_a_queue_url_from_the_environment_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", '[run]\nmode = "enqueue"\n')

    settings = load_settings(path, env={"BACKUPCTL_QUEUE_URL": "https://queue.example/q"})

    assert settings.queue_url == "https://queue.example/q"


def test_invalid_run_mode_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", '[run]\nmode = "sideways"\n')

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [
        f"{path}: [run] mode: must be 'direct' or 'enqueue', got 'sideways'"
    ]


def test_numbers_for_durations_are_seconds(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", "[run]\ntimeout = 60\nlease = 2.5\nretry_wait = 0\n")

    settings = load_settings(path, env={})

    assert (settings.run.timeout, settings.run.lease, settings.run.retry_wait) == (60.0, 2.5, 0.0)


def test_a_boolean_is_not_a_whole_number(tmp_path: Path) -> None:
    path = write(tmp_path / "backupctl.toml", "[run]\nparallel = true\n")

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert problems_of(excinfo) == [
        f"{path}: [run] parallel: must be a whole number of at least 1, got True"
    ]


@pytest.mark.parametrize(
    ("section", "text", "message"),
    [
        ("run", "lease = inf", "[run] lease: must be between 0s and 30d, got inf"),
        ("run", "timeout = nan", "[run] timeout: must be between 0s and 30d, got nan"),
        ("run", 'retry_wait = "400d"', "[run] retry_wait: must be between 0s and 30d, got '400d'"),
        (
            "run",
            "max_attempts = 3000000000",
            "[run] max_attempts: must be at most 100000, got 3000000000",
        ),
    ],
)
def test_values_past_any_sane_bound_are_refused(
    tmp_path: Path, section: str, text: str, message: str
) -> None:
    path = write(tmp_path / "backupctl.toml", f"[{section}]\n{text}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_settings(str(path), env={})
    assert excinfo.value.problems == [f"{path}: {message}"]
