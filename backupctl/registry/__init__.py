"""The app registry: which apps exist and how each one is backed up."""

from backupctl.registry.model import APP_ID, App, validate_app_id
from backupctl.registry.toml_file import load_registry

__all__ = ["APP_ID", "App", "load_registry", "validate_app_id"]
