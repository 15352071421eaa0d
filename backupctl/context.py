"""Turn Settings into the real parts: ledger, storage, registry."""

from __future__ import annotations

from pathlib import Path

from backupctl.config import Settings
from backupctl.kinds import KindOptions
from backupctl.ledger import Ledger, connect_ledger
from backupctl.registry import App, load_registry
from backupctl.storage import Storages


def state_dir() -> Path:
    """Where the embedded ledger lives (XDG state dir, e.g. ~/.local/state/backupctl)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("backupctl"))


def data_dir() -> Path:
    """Where backups go when no storage is configured (e.g. ~/.local/share/backupctl)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("backupctl"))


def storage_url(settings: Settings) -> str:
    return settings.storage or (data_dir() / "backups").as_uri()


def open_ledger(settings: Settings) -> Ledger:
    """Connect to the configured ledger, or start the embedded one."""
    url = settings.database_url
    if url is None:
        from backupctl.ledger.embedded import embedded_database_url

        url = embedded_database_url(state_dir())
    return connect_ledger(url, settings.database_schema)


def open_storages(settings: Settings) -> Storages:
    """The configured storage (and any an app names), opened on first use."""
    storages = Storages(storage_url(settings), settings.s3)
    storages.get()  # a malformed URL is a configuration error, found before any work
    return storages


def kind_options(settings: Settings) -> KindOptions:
    return KindOptions(pg_bin_dir=settings.pg_bin_dir)


def load_apps(settings: Settings) -> list[App]:
    return load_registry(settings.registry)
