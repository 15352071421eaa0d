"""Turn Settings into the real parts: ledger, storage, registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from backupctl.config import Settings
from backupctl.kinds import KindOptions
from backupctl.ledger import Ledger, connect_ledger
from backupctl.registry import App, RegistrySpec, open_source
from backupctl.registry.load import placed_apps
from backupctl.registry.sources import Source
from backupctl.storage import Storages


def state_dir(settings: Settings) -> Path:
    """Where the embedded ledger lives: `state_dir`, else the XDG state directory
    (e.g. ~/.local/state/backupctl)."""
    if settings.state_dir:
        return Path(settings.state_dir).absolute()
    import platformdirs

    return Path(platformdirs.user_state_dir("backupctl"))


def default_backups_dir(settings: Settings) -> Path:
    """Where backups go when no storage is configured: beside the embedded ledger when
    `state_dir` is set (one folder for a service user), else the XDG data directory
    (e.g. ~/.local/share/backupctl/backups)."""
    if settings.state_dir:
        return Path(settings.state_dir).absolute() / "backups"
    import platformdirs

    return Path(platformdirs.user_data_dir("backupctl")) / "backups"


def storage_url(settings: Settings) -> str:
    """The configured storage, or the default backups folder as a file:// URL."""
    return settings.storage or default_backups_dir(settings).as_uri()


# A command that only reads rides out a restart this long before it says exit 3.
READ_OUTAGE = 5.0


def open_ledger(settings: Settings, *, workers: int = 0) -> Ledger:
    """Connect to the configured ledger, or start the embedded one.

    A command that runs backups (`workers` > 0: how many at once) gets a connection per
    backup and rides out a ledger outage for as long as a lease can be held without
    renewal, so a restart costs no backup; other commands retry for READ_OUTAGE."""
    from backupctl.heartbeat import SAFE_SHARE

    url = settings.database_url
    if url is None:
        from backupctl.ledger.embedded import embedded_database_url

        url = embedded_database_url(state_dir(settings))
    if workers:
        return connect_ledger(
            url,
            settings.database_schema,
            size=workers + 2,
            outage=settings.run.lease * SAFE_SHARE,
        )
    return connect_ledger(url, settings.database_schema, size=2, outage=READ_OUTAGE)


def open_storages(settings: Settings) -> Storages:
    """The configured storage (and any an app names), opened on first use."""
    storages = Storages(storage_url(settings), settings.s3)
    storages.get()  # a malformed URL is a configuration error, found before any work
    return storages


def kind_options(settings: Settings) -> KindOptions:
    """What the kinds take from the configuration (where their programs are)."""
    # pg_embedded has no Settings field of its own: read from the values in effect.
    return KindOptions(
        pg_bin_dir=settings.pg_bin_dir,
        pg_embedded=bool(settings.values.get("pg_embedded", True)),
        hidden_env=registry_secret_env(settings),
    )


def registry_spec(settings: Settings) -> RegistrySpec:
    """The registry* settings in effect."""
    values = settings.values
    return RegistrySpec(
        location=settings.registry,
        token_env=values.get("registry_token_env"),
        ca_file=values.get("registry_ca_file"),
        timeout=float(values.get("registry_timeout") or 30.0),
        query=values.get("registry_query"),
    )


def open_registry(settings: Settings) -> Source:
    """The registry's source: a file, a folder, an API or a query."""
    return open_source(registry_spec(settings))


def load_placed_apps(settings: Settings, source: Source | None = None) -> list[tuple[App, str]]:
    """The registry's apps, each with where it was found and the recipients its
    artifacts are encrypted to: its own `recipients`, else [encryption]'s (none: not
    encrypted). Every command that reads the registry comes here (or to load_apps)."""
    return [
        (app if app.recipients is not None else replace(app, recipients=settings.recipients), at)
        for app, at in placed_apps(source or open_registry(settings))
    ]


def load_apps(settings: Settings, source: Source | None = None) -> list[App]:
    """The registry's apps (see load_placed_apps)."""
    return [app for app, _ in load_placed_apps(settings, source)]


def registry_source(settings: Settings) -> str:
    """The registry as named in messages: its file, folder or URL, credentials masked."""
    return open_registry(settings).label


def registry_secret_env(settings: Settings) -> frozenset[str]:
    """Variables holding the registry's secret (its token): no program we start sees them."""
    name = settings.values.get("registry_token_env")
    return frozenset({name}) if name else frozenset()
