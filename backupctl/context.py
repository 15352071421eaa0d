"""Turn Settings into the real parts: ledger, storage, registry."""

from __future__ import annotations

from pathlib import Path

from backupctl.config import Settings
from backupctl.ledger import Ledger, connect_ledger
from backupctl.registry import App, load_registry
from backupctl.storage import Storage, open_storage


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


def open_configured_storage(settings: Settings) -> Storage:
    return open_storage(storage_url(settings))


def load_apps(settings: Settings) -> list[App]:
    return load_registry(settings.registry)
