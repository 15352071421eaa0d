"""backupctl: nightly backups of a fleet of apps from one cron line, correctly."""

__version__ = "0.1.0"
