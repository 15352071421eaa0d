"""What several commands share: loading settings, opening the ledger, recording runs."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import date
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from backupctl.errors import EXIT_FAILED, BackupctlError, LedgerUnavailable
from backupctl.stop import Stop

if TYPE_CHECKING:
    from backupctl.config import Settings
    from backupctl.encryption import Identities
    from backupctl.ledger import Ledger


def settings_from(ctx: click.Context, flags: Mapping[str, Any] | None = None) -> Settings:
    """Load and validate the settings (file < env < these flags)."""
    # Imported here: the config module is heavy, and a usage error or --help needs none of it.
    from backupctl.config import load_settings

    return load_settings(ctx.obj["config_file"], flags=flags)


def terse(ctx: click.Context) -> bool:
    """Print only failures: with -q, or off a terminal without -v. Cron mails whatever
    a job prints, so an hourly line that did its work, or nothing, must print nothing."""
    obj = ctx.find_root().obj or {}
    if obj.get("quiet"):
        return True
    return not obj.get("verbose") and not _stdout_is_terminal()


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


@contextmanager
def recorded(ledger: Ledger, command: str, run_date: date | None) -> Iterator[list[int]]:
    """Record this invocation in the ledger; the caller puts its exit code in the list."""
    from backupctl.redact import redact_text  # here: a usage error or --help needs none

    args = redact_text(" ".join(sys.argv[1:]))
    invocation = ledger.start_invocation(command, args, run_date)
    result = [EXIT_FAILED]
    try:
        yield result
    except BackupctlError as exc:
        result[0] = exc.exit_code
        raise
    finally:
        with suppress(LedgerUnavailable):  # the error that brought us here says enough
            ledger.finish_invocation(invocation, result[0])


def stop_on_signals() -> Stop:
    """First SIGTERM/SIGINT: stop taking work and wind down. Second: stop now."""
    stop = Stop()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.event.is_set():
            stop.hard.set()
        stop.request(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def parse_duration_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> float | None:
    """click callback: "90s", "5m", "2h" -> seconds."""
    if value is None:
        return None
    from backupctl.durations import parse_duration  # here: a usage error or --help needs none

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    """click callback: YYYY-MM-DD -> date."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)") from None


# restore, verify --deep (and a drill): the age identity that opens encrypted backups.
IDENTITY = click.option(
    "--identity",
    metavar="FILE",
    envvar="BACKUPCTL_IDENTITY_FILE",
    help="An age identity file (AGE-SECRET-KEY-1…, as age-keygen writes) to decrypt "
    "encrypted backups; also BACKUPCTL_IDENTITY_FILE. Keep it off the backup machines.",
)


def identities_from(path: str | None) -> Identities | None:
    """The keys of --identity FILE, read once (UsageError, exit 2, if unusable)."""
    if not path:
        return None
    from backupctl.encryption import load_identities

    return load_identities(path)
