"""Settings from a TOML file, BACKUPCTL_* environment variables and flags.

Later sources win: defaults < file < environment < flags. Every problem is
collected and reported at once, naming the file (or variable) and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backupctl.durations import WHOLE_DAY, Window, parse_duration, parse_window
from backupctl.errors import ConfigError
from backupctl.storage.s3 import S3Options

DEFAULT_CONFIG_PATH = "/etc/backupctl/backupctl.toml"
DEFAULT_REGISTRY_PATH = "/etc/backupctl/apps.toml"
SQS_MAX_VISIBILITY = 12 * 3600.0
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else _str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"must be true or false, got {value!r}")
    return text in ("true", "1", "yes")


def _positive_int(value: Any) -> int:
    return _int_at_least(value, 1)


def _count(value: Any) -> int:
    return _int_at_least(value, 0)


# Far beyond any sane setting, well inside what Postgres intervals and integers hold.
MAX_INT = 100_000
MAX_SECONDS = 30 * 86400.0


def _int_at_least(value: Any, low: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"must be a whole number of at least {low}, got {value!r}")
    if value > MAX_INT:
        raise ValueError(f"must be at most {MAX_INT}, got {value}")
    return value


def _duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = parse_duration(_str(value))
    if not 0 <= seconds <= MAX_SECONDS:  # also refuses inf and nan
        raise ValueError(f"must be between 0s and 30d, got {value!r}")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _opt_positive_duration(value: Any) -> float | None:
    return None if value in (None, "") else _positive_duration(value)


DURATION_PARSERS = (_duration, _positive_duration, _opt_positive_duration)


def _registry(value: Any) -> str:
    from backupctl.registry.sources import source_kind

    text = _str(value)
    kind = source_kind(text)
    if kind == "path":
        if "://" in text:  # (the value is not quoted: a URL may hold a password)
            raise ValueError(
                "a URL must start with http://, https:// or postgresql://; "
                "anything else is a file or folder path"
            )
        return text
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (parsing it raises for a malformed one)
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if not parts.hostname and kind == "http":
        raise ValueError("an http(s) URL needs a host")
    if kind == "http" and (parts.username or parts.password):
        raise ValueError(
            "an http(s) registry URL must not hold credentials: "
            "give its token in a variable named by registry_token_env"
        )
    return text


def _opt_env_name(value: Any) -> str | None:
    text = _opt_str(value)
    if text is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError(f"must be the name of an environment variable, got {text!r}")
    return text


def _timezone(value: Any) -> ZoneInfo:
    try:
        return ZoneInfo(_str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (try Europe/Amsterdam or UTC)") from None


def _window(value: Any) -> Window:
    return parse_window(_str(value))


def _mode(value: Any) -> str:
    if value not in ("direct", "enqueue"):
        raise ValueError(f"must be 'direct' or 'enqueue', got {value!r}")
    return str(value)


def _sse(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if value not in ("AES256", "aws:kms"):
        raise ValueError(f"must be 'AES256' or 'aws:kms', got {value!r}")
    return str(value)


def _object_lock(value: Any) -> str | None:
    from backupctl.storage.object_lock import MODES

    if value in (None, ""):
        return None
    if value not in MODES:
        raise ValueError(f"must be 'GOVERNANCE' or 'COMPLIANCE', got {value!r}")
    return str(value)


def _object_lock_days(value: Any) -> int | None:
    from backupctl.storage.object_lock import MAX_DAYS

    if value in (None, ""):
        return None
    days = _positive_int(value)
    if days > MAX_DAYS:
        raise ValueError(f"must be at most {MAX_DAYS} (S3's limit, 100 years), got {days}")
    return days


def _ping_url(value: Any) -> str | None:
    from backupctl.monitoring import ping_url_problem

    url = _opt_str(value)
    if url is not None and (problem := ping_url_problem(url)) is not None:
        raise ValueError(problem)
    return url


def _schema(value: Any) -> str:
    text = _str(value)
    if not _IDENTIFIER.match(text):
        raise ValueError("must be a lower-case SQL identifier such as 'backupctl'")
    return text


def _storage(value: Any) -> str:
    from backupctl.storage import storage_url_problem

    text = _str(value)
    if (problem := storage_url_problem(text)) is not None:
        raise ValueError(problem)
    return text


def _poll_wait(value: Any) -> int:
    seconds = _duration(value)
    if not 1 <= seconds <= 20 or seconds != int(seconds):
        raise ValueError(f"must be a whole number of seconds from 1s to 20s (SQS), got {value!r}")
    return int(seconds)


def _fraction(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a fraction between 0 and 1, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 1:
        raise ValueError(f"must be a fraction between 0 and 1, got {value!r}")
    return number


def _recipients(value: Any) -> tuple[str, ...]:
    from backupctl.encryption import recipients_problems

    if value in (None, "", []):
        return ()
    if isinstance(value, str):  # from the environment: comma- or space-separated
        value = value.replace(",", " ").split()
    found, problems = recipients_problems(value)
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(found)


NOTIFY_EVENTS = ("failure", "missed", "warning", "recovered")
DEFAULT_NOTIFY_ON = ("failure", "missed", "recovered")
# Between two Apprise URLs in one variable: blanks, or a comma before the next scheme
# (a comma inside a URL, as in mailto://...?to=a@x,b@y, stays).
_URL_SEPARATOR = re.compile(r"\s+|\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def _notify_urls(value: Any) -> tuple[str, ...]:
    """The shape of [monitoring] notify; whether Apprise knows each URL is checked after."""
    if value in (None, "", []):
        return ()
    if isinstance(value, str):  # from the environment
        value = [part for part in _URL_SEPARATOR.split(value.strip()) if part]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError('must be a list of Apprise URLs, such as ["mailto://user:pw@host"]')
    return tuple(dict.fromkeys(v.strip() for v in value))  # one message per URL, not two


def _notify_on(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # from the environment: comma- or space-separated
        value = value.replace(",", " ").split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of events out of {', '.join(NOTIFY_EVENTS)}")
    unknown = [v for v in value if v not in NOTIFY_EVENTS]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r} (the events: {', '.join(NOTIFY_EVENTS)})")
    return tuple(e for e in NOTIFY_EVENTS if e in value)


@dataclass(frozen=True)
class Key:
    """One setting: where it lives, how it is parsed, its default."""

    section: str | None
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        return "BACKUPCTL_" + self.dotted.replace(".", "_").upper()


KEYS: tuple[Key, ...] = (
    Key(None, "database_url", _opt_str, None, "Postgres URL of the ledger; empty: embedded", True),
    Key(None, "database_schema", _schema, "backupctl", "schema holding the ledger tables"),
    Key(None, "timezone", _timezone, ZoneInfo("UTC"), "the zone whose calendar names a night"),
    Key(
        None,
        "registry",
        _registry,
        DEFAULT_REGISTRY_PATH,
        "the apps: a TOML file, a folder of them, an http(s):// URL or a postgresql:// URL",
        True,
    ),
    Key(
        None,
        "registry_token_env",
        _opt_env_name,
        None,
        "http(s) registry: the variable holding its Bearer token",
    ),
    Key(
        None,
        "registry_ca_file",
        _opt_str,
        None,
        "https registry: the CA bundle to verify it with; empty: the system's",
    ),
    Key(None, "registry_timeout", _positive_duration, 30.0, "http(s) or postgresql registry"),
    Key(None, "registry_query", _opt_str, None, "postgresql registry: the SELECT listing the apps"),
    Key(None, "storage", _storage, None, "file:///dir or s3://bucket/prefix; empty: data dir"),
    Key(None, "pg_bin_dir", _opt_str, None, "folder with pg_dump/pg_restore; empty: PATH"),
    Key(
        None,
        "state_dir",
        _opt_str,
        None,
        "folder of the embedded ledger (and of backups when storage is unset); "
        "empty: the XDG state directory",
    ),
    Key(None, "pg_embedded", _bool, True, "also use the embedded Postgres's pg_dump/pg_restore"),
    Key("run", "mode", _mode, "direct", "direct: back up here; enqueue: send to workers"),
    Key("run", "parallel", _positive_int, 4, "backups at once"),
    Key("run", "max_attempts", _positive_int, 3, "attempts per backup per night"),
    Key("run", "timeout", _positive_duration, 7200.0, "per backup"),
    Key("run", "lease", _positive_duration, 300.0, "renewed while a backup runs"),
    Key("run", "window", _window, WHOLE_DAY, "when a night's backups may start"),
    Key("run", "retry_wait", _duration, 30.0, "wait before a retry; doubles each attempt"),
    Key("run", "retry_wait_max", _duration, 600.0, "the longest wait before a retry"),
    Key(
        "run",
        "max_shrink",
        _fraction,
        0.25,
        "refuse a registry missing more than this share of the last night's apps",
    ),
    Key(
        "run",
        "min_size_ratio",
        _fraction,
        0.5,
        "warn about a nightly backup smaller than this share of the app's usual size; 0: off",
    ),
    Key("s3", "sse", _sse, None, "server-side encryption: AES256 or aws:kms"),
    Key("s3", "kms_key_id", _opt_str, None, "KMS key id for sse = aws:kms"),
    Key(
        "s3",
        "object_lock",
        _object_lock,
        None,
        "lock each artifact (S3 Object Lock): GOVERNANCE or COMPLIANCE",
    ),
    Key("s3", "object_lock_days", _object_lock_days, None, "days each artifact stays locked"),
    Key("queue", "url", _opt_str, None, "SQS queue URL for enqueue mode and workers"),
    Key("queue", "resend_after", _positive_duration, 3600.0, "resend if enqueued this long"),
    Key("queue", "grace", _duration, 300.0, "worker shutdown: time to finish running backups"),
    Key("queue", "wait", _poll_wait, 20, "long-poll wait of one receive, 1s to 20s"),
    Key(
        "queue",
        "ledger_outage",
        _positive_duration,
        600.0,
        "a worker exits (to be restarted) after the ledger is away this long",
    ),
    Key("retention", "keep_daily", _count, 7, "nightly backups kept, one a day"),
    Key("retention", "keep_weekly", _count, 4, "nightly backups kept, one a week"),
    Key("retention", "keep_monthly", _count, 12, "nightly backups kept, one a month"),
    Key(
        "encryption",
        "recipients",
        _recipients,
        (),
        "age public keys (age1…) every artifact is encrypted to; empty: not encrypted",
    ),
    Key(
        "encryption",
        "recipients_file",
        _opt_str,
        None,
        "a file of age recipients, one a line (# comments), added to recipients",
    ),
    Key("monitoring", "ping_url", _ping_url, None, "healthchecks-style ping URL", True),
    Key("monitoring", "metrics_file", _opt_str, None, "Prometheus textfile to write"),
    Key(
        "monitoring",
        "notify",
        _notify_urls,
        (),
        "Apprise URLs told of a failed, missed or recovered night (needs backupctl[notify])",
        True,
    ),
    Key(
        "monitoring",
        "notify_on",
        _notify_on,
        DEFAULT_NOTIFY_ON,
        f"the events notify tells of, out of {', '.join(NOTIFY_EVENTS)}",
    ),
    Key(
        "drill",
        "postgres_url",
        _opt_str,
        None,
        "Postgres server drills restore into (a scratch database each); empty: embedded",
        True,
    ),
    Key(
        "drill",
        "mysql_url",
        _opt_str,
        None,
        "MySQL/MariaDB server drills restore into (mysql://user:pw@host:port/; a scratch "
        "database each); needed to drill a mysql app",
        True,
    ),
    Key(
        "drill",
        "max_age",
        _opt_positive_duration,
        None,
        "check is CRITICAL for an app whose latest passed drill is older; empty: off",
    ),
    Key("drill", "timeout", _positive_duration, 3600.0, "per drill_argv program run"),
)
_BY_DOTTED = {key.dotted: key for key in KEYS}
_SECTIONS = {key.section for key in KEYS if key.section}


@dataclass(frozen=True)
class RunSettings:
    mode: str
    parallel: int
    max_attempts: int
    timeout: float
    lease: float
    window: Window
    retry_wait: float
    retry_wait_max: float = 600.0
    max_shrink: float = 0.25
    min_size_ratio: float = 0.5


@dataclass(frozen=True)
class Settings:
    """The configuration in effect, validated."""

    database_url: str | None
    database_schema: str
    timezone: ZoneInfo
    registry: str
    storage: str | None
    pg_bin_dir: str | None
    s3: S3Options
    run: RunSettings
    queue_url: str | None
    queue_resend_after: float
    queue_grace: float
    queue_ledger_outage: float
    queue_wait: int
    retention: dict[str, int]
    ping_url: str | None
    metrics_file: str | None
    config_file: str | None
    state_dir: str | None = None
    # [encryption]: recipients and those of recipients_file; () leaves artifacts plain.
    recipients: tuple[str, ...] = ()
    # [monitoring] notify: Apprise URLs (secrets), and the events they are told of.
    notify: tuple[str, ...] = ()
    notify_on: tuple[str, ...] = DEFAULT_NOTIFY_ON
    origins: dict[str, str] = field(default_factory=dict)  # dotted key -> file/env/flag/default
    values: dict[str, Any] = field(default_factory=dict)  # dotted key -> the value in effect


def _read_file(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"{path}: no such configuration file")
    except PermissionError:
        problems.append(f"{path}: not readable (permission denied)")
    except IsADirectoryError:
        problems.append(f"{path}: is a directory, not a configuration file")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
    except UnicodeDecodeError:
        problems.append(f"{path}: not valid UTF-8 text")
    return {}


def _flatten(doc: dict[str, Any], source: str, problems: list[str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in doc.items():
        if name in _SECTIONS:
            if not isinstance(value, dict):
                problems.append(f"{source}: [{name}] must be a table")
                continue
            for sub, subvalue in value.items():
                dotted = f"{name}.{sub}"
                if dotted not in _BY_DOTTED:
                    known = ", ".join(k.name for k in KEYS if k.section == name)
                    problems.append(f"{source}: [{name}] {sub}: unknown key (known: {known})")
                else:
                    flat[dotted] = subvalue
        elif name in _BY_DOTTED and _BY_DOTTED[name].section is None:
            flat[name] = value
        else:
            problems.append(f"{source}: {name}: unknown key")
    return flat


def _is_relative_path(value: str) -> bool:
    return not value.startswith("/") and "://" not in value


def config_path(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """Which file to read, and whether the user named it (so it must exist)."""
    if explicit:
        return Path(explicit), True
    if env.get("BACKUPCTL_CONFIG"):
        return Path(env["BACKUPCTL_CONFIG"]), True
    default = Path(DEFAULT_CONFIG_PATH)
    return (default, False) if default.exists() else (None, False)


def _object_lock_problems(values: Mapping[str, Any]) -> list[str]:
    """object_lock and object_lock_days go together: a mode with no length (or a
    length with no mode) would silently store unlocked copies."""
    if "s3.object_lock" not in values or "s3.object_lock_days" not in values:
        return []  # one of them is malformed: already reported
    mode, days = values["s3.object_lock"], values["s3.object_lock_days"]
    if mode and not days:
        return [
            f"[s3] object_lock = {mode!r} needs object_lock_days (how long each copy stays locked)"
        ]
    if days and not mode:
        return [f"[s3] object_lock_days = {days} needs object_lock = 'GOVERNANCE' or 'COMPLIANCE'"]
    return []


def _registry_problems(values: Mapping[str, Any]) -> list[str]:
    """The registry_* settings each belong to one form of `registry`: one given for
    another form is a mistake (a registry changed, its settings left behind)."""
    from backupctl.registry.sources import source_kind

    if "registry" not in values:
        return []  # malformed: already reported
    kind = source_kind(values["registry"])
    problems = []
    if kind == "postgres" and not values.get("registry_query"):
        problems.append(
            "registry: a postgresql:// registry needs registry_query "
            "(the SELECT whose rows are the apps)"
        )
    if kind != "postgres" and values.get("registry_query"):
        problems.append("registry_query: only for a postgresql:// registry")
    for name in ("registry_token_env", "registry_ca_file"):
        if kind != "http" and values.get(name):
            problems.append(f"{name}: only for an http(s):// registry")
    return problems


def load_settings(
    explicit_path: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from file, environment and flags; raise ConfigError listing all problems."""
    env = os.environ if env is None else env
    problems: list[str] = []
    raw: dict[str, tuple[Any, str]] = {}

    path, _named = config_path(explicit_path, env)
    if path is not None:
        for dotted, value in _flatten(_read_file(path, problems), str(path), problems).items():
            if (
                dotted
                in (
                    "registry",
                    "registry_ca_file",
                    "pg_bin_dir",
                    "state_dir",
                    "encryption.recipients_file",
                )
                and isinstance(value, str)
                and _is_relative_path(value)
            ):
                # A relative registry path in a file is relative to that file (and
                # "apps.d/" stays a folder's name).
                slash = "/" if value.endswith("/") else ""
                value = str((path.parent / value).resolve()) + slash
            raw[dotted] = (value, f"file {path}")
    for key in KEYS:
        if key.env in env:
            raw[key.dotted] = (env[key.env], f"env {key.env}")
    for dotted, value in (flags or {}).items():
        if value is not None:
            raw[dotted] = (value, "flag")

    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key in KEYS:
        if key.dotted in raw:
            value, origin = raw[key.dotted]
            try:
                values[key.dotted] = key.parse(value)
                origins[key.dotted] = origin
            except ValueError as exc:
                where = f"{path}: " if origin.startswith("file") else f"{origin.split()[-1]}: "
                if origin == "flag":
                    where = f"--{key.name.replace('_', '-')}: "
                label = f"[{key.section}] {key.name}" if key.section else key.name
                problems.append(f"{where}{label}: {exc}")
        else:
            values[key.dotted] = key.default
            origins[key.dotted] = "default"
    if values.get("run.mode") == "enqueue" and "queue.url" in values and not values["queue.url"]:
        problems.append("[run] mode = 'enqueue' needs [queue] url (or BACKUPCTL_QUEUE_URL)")
    if values.get("run.mode") == "enqueue" and values.get("run.timeout", 0) > SQS_MAX_VISIBILITY:
        problems.append(
            f"[run] timeout = {values['run.timeout']:g}s is longer than SQS lets a message "
            "stay hidden (12h): in enqueue mode a backup must finish within 12h"
        )
    problems.extend(_object_lock_problems(values))
    problems.extend(_registry_problems(values))
    if values.get("monitoring.notify"):
        from backupctl.notifications import notify_url_problems

        origin = origins["monitoring.notify"]
        where = f"{path}: " if origin.startswith("file") else f"{origin.split()[-1]}: "
        problems.extend(
            f"{where}[monitoring] notify: {p}"
            for p in notify_url_problems(values["monitoring.notify"])
        )
    recipients = list(values.get("encryption.recipients") or ())
    if values.get("encryption.recipients_file"):
        from backupctl.encryption import read_recipients_file

        origin = origins["encryption.recipients_file"]
        where = f"{path}: " if origin.startswith("file") else f"{origin.split()[-1]}: "
        found, bad = read_recipients_file(values["encryption.recipients_file"])
        problems.extend(f"{where}[encryption] recipients_file: {p}" for p in bad)
        recipients.extend(r for r in found if r not in recipients)
    if problems:
        raise ConfigError(problems)

    return Settings(
        database_url=values["database_url"],
        database_schema=values["database_schema"],
        timezone=values["timezone"],
        registry=values["registry"],
        storage=values["storage"],
        pg_bin_dir=values["pg_bin_dir"],
        s3=S3Options(
            sse=values["s3.sse"],
            kms_key_id=values["s3.kms_key_id"],
            object_lock=values["s3.object_lock"],
            object_lock_days=values["s3.object_lock_days"],
        ),
        run=RunSettings(**{k.name: values[k.dotted] for k in KEYS if k.section == "run"}),
        queue_url=values["queue.url"],
        queue_resend_after=values["queue.resend_after"],
        queue_grace=values["queue.grace"],
        queue_ledger_outage=values["queue.ledger_outage"],
        queue_wait=values["queue.wait"],
        retention={
            k: values[f"retention.{k}"] for k in ("keep_daily", "keep_weekly", "keep_monthly")
        },
        ping_url=values["monitoring.ping_url"],
        metrics_file=values["monitoring.metrics_file"],
        config_file=str(path) if path else None,
        state_dir=values["state_dir"],
        recipients=tuple(recipients),
        notify=values["monitoring.notify"],
        notify_on=values["monitoring.notify_on"],
        origins=origins,
        values=values,
    )
