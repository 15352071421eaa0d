"""The project's exceptions. Each carries the exit code the CLI turns it into."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class BackupctlError(Exception):
    """Something went wrong that the user should hear about in one line."""

    exit_code = EXIT_FAILED


class ConfigError(BackupctlError):
    """The configuration is invalid; nothing was changed."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class RegistryError(ConfigError):
    """The app registry is invalid; nothing was changed."""


class RegistryUnavailable(BackupctlError):
    """The registry's source (an API, a database) cannot be reached now; nothing was
    changed. The message is safe to show (credentials masked)."""

    exit_code = EXIT_UNAVAILABLE


class UsageError(BackupctlError):
    """The command line asks for something that cannot be done."""

    exit_code = EXIT_USAGE


class LedgerUnavailable(BackupctlError):
    """The ledger database cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class BackupFailed(Exception):
    """One backup failed; the message is safe to record (already redacted)."""

    final = False  # True: another attempt this round would fail the same way


class Cancelled(BackupFailed):
    """A backup was stopped: its lease was lost, its timeout passed, or shutdown."""


class EmptyBackup(BackupFailed):
    """The dump held nothing (no output, no files, no tables) and the app does not
    allow that. Final for its round of attempts: another would find it empty again."""

    final = True
