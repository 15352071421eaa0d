"""The backupctl command line: parse, call the core, render. Nothing else."""

from __future__ import annotations

from typing import Any

import click

from backupctl import __version__
from backupctl.errors import BackupctlError, ConfigError


class _Group(click.Group):
    """Turns the project's errors into one clear line and their exit code."""

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
    help="Log lines as text or JSON [default: text on a terminal, else JSON].",
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
      0 * * * *  backupctl run-nightly
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other: pick one")
    from backupctl.logs import setup_logging

    setup_logging(verbose=verbose, quiet=quiet, log_format=log_format)
    ctx.obj = {"config_file": config_file, "quiet": quiet, "verbose": verbose}


def register_commands() -> click.Group:
    """Import every command module (each adds its commands to `cli`); return `cli`."""
    from backupctl.cli import (  # noqa: F401  (imported for their commands)
        backup,
        check,
        config_cmd,
        db,
        maintenance,
        nightly,
        restore,
        retry,
        runs,
        status,
        worker,
    )

    return cli


def main() -> None:
    """Console script entry point."""
    register_commands()(prog_name="backupctl")
