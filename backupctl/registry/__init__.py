"""The app registry: which apps exist and how each one is backed up."""

from backupctl.registry.load import apps_from
from backupctl.registry.model import APP_ID, App, validate_app_id
from backupctl.registry.sources import RegistrySpec, open_source


def load_registry(location: str) -> list[App]:
    """The validated apps of the registry at `location` (a TOML file, a folder of
    them, or a URL asked with the default settings); RegistryError lists every problem."""
    return apps_from(open_source(RegistrySpec(location)))


__all__ = [
    "APP_ID",
    "App",
    "RegistrySpec",
    "apps_from",
    "load_registry",
    "open_source",
    "validate_app_id",
]
