"""The backupctl command line: parse, call the core, render. Nothing else.

Start-up is kept short, since cron, monitoring and shells start it often: this module
imports only click and the error classes. Each command's module is imported only when
that command runs or its help is asked for; `backupctl --help` lists the commands from
COMMANDS, which tests/unit/test_cli_lazy.py checks against the real commands.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

import click

from backupctl import __version__
from backupctl.errors import BackupctlError, ConfigError

# Every top-level command: name -> (its module in backupctl.cli, which adds it to `cli`
# when imported; its short help, untruncated, as `Command.get_short_help_str` gives it).
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "backup": (
        "backup",
        "Back up one app now, ad hoc: recorded as `adhoc`, apart from the nightly backups.",
    ),
    "check": (
        "check",
        "Monitoring: is the night complete? A dead-man's switch for Nagios, Icinga, cron.",
    ),
    "config": ("config_cmd", "The configuration."),
    "db": ("db", "The ledger database."),
    "drill": (
        "drill",
        "Restore backups into scratch targets, check them and record the verdict.",
    ),
    "prune": (
        "maintenance",
        "Delete nightly backups that [retention] no longer keeps; their rows turn `pruned`.",
    ),
    "report": (
        "report",
        "Write one HTML page of the latest nights: summary, grid, sizes, failures, drills.",
    ),
    "restore": (
        "restore",
        "Restore one app's backup, checking its sha256 as it streams.",
    ),
    "retry": (
        "retry",
        "Give a night's failed backups another round of attempts and run them now.",
    ),
    "run-nightly": (
        "nightly",
        "Back up every enabled app once for tonight; a rerun resumes or does nothing.",
    ),
    "runs": (
        "runs",
        "One line per night: its status, counts by status, duration, bytes and warnings.",
    ),
    "status": (
        "status",
        "Show one night, app by app: status, attempts, duration, size and error or warning.",
    ),
    "verify": (
        "maintenance",
        "Re-read stored backups and compare their sha256 and size with the ledger's.",
    ),
    "worker": ("worker", "Take backup jobs from the queue and run them, until stopped."),
}

# click >= 8.4 suggests close names for an unknown command (before, there is none to keep).
_NoSuchCommand: Any = getattr(click.exceptions, "NoSuchCommand", ())


# ctx.meta key (meta is shared by every context of a run): the logging asked for, until
# a command starts it.
_LOGGING = "backupctl.logging"


def _start_logging(ctx: click.Context) -> None:
    """Configure logging as the global options asked, once per run."""
    options = ctx.meta.pop(_LOGGING, None)
    if options is None:
        return
    from backupctl.logs import setup_logging

    setup_logging(**options)


class _Command(click.Command):
    """A command (of `cli` or a group under it) that starts logging when it runs."""

    def invoke(self, ctx: click.Context) -> Any:
        _start_logging(ctx)
        return super().invoke(ctx)


class _SubGroup(click.Group):
    """A group under `cli` (config, db): its commands start logging too."""

    command_class = _Command
    group_class = type  # and so do the groups under it


class _Group(click.Group):
    """Imports a command's module only when that command is needed, and turns the
    project's errors into one clear line and their exit code."""

    command_class = _Command
    group_class = _SubGroup

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, sorted, without importing any command module."""
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The real command: its module is imported the first time it is asked for."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"backupctl.cli.{COMMANDS[cmd_name][0]}")
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except _NoSuchCommand as exc:
            # click suggests among the commands loaded so far, here none: offer them all.
            raise _NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own listing, run on stand-ins made from COMMANDS: the same text, and no
        # command module imported to make it.
        stand_ins = {
            name: click.Command(name, help=COMMANDS[name][1])
            if name in COMMANDS
            else self.commands[name]
            for name in self.list_commands(ctx)
        }
        click.Group(self.name, commands=stand_ins).format_commands(ctx, formatter)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"backupctl: error: {problem}", err=True)
            click.echo("backupctl: nothing was changed.", err=True)
            ctx.exit(exc.exit_code)
        except BackupctlError as exc:
            click.echo(f"backupctl: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="backupctl")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    envvar="BACKUPCTL_CONFIG",
    help="Configuration file [default: /etc/backupctl/backupctl.toml].",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures (for cron mail).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="BACKUPCTL_LOG_FORMAT",
    help="Log lines as text or JSON [default: text].",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_file: str | None,
    verbose: int,
    quiet: bool,
    log_format: str | None,
) -> None:
    """Nightly backups of a fleet of apps from one cron line, correctly.

    \b
    Example crontab line (hourly firing is fine: later runs resume or do nothing):
      5 * * * *  /usr/local/bin/backupctl run-nightly
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other: pick one")
    # Logging starts when the command runs (_Command.invoke), not here: a command's usage
    # error or --help then loads neither the logs module nor, on a terminal, rich.
    ctx.meta[_LOGGING] = {"verbose": verbose, "quiet": quiet, "log_format": log_format}
    ctx.obj = {"config_file": config_file, "quiet": quiet, "verbose": verbose}


def register_commands() -> click.Group:
    """Import every command module (each adds its commands to `cli`); return `cli`.

    For what walks all the commands at once (tests, docs); the command line itself
    imports a module only when one of its commands is used.
    """
    for module in sorted({module for module, _ in COMMANDS.values()}):
        importlib.import_module(f"backupctl.cli.{module}")
    return cli


def main() -> None:
    """Console script entry point."""
    cli(prog_name="backupctl")
