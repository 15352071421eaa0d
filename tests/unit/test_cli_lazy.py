"""The command line starts fast: commands are listed from a static table, and a command's
module is imported only when that command is used. The table must not drift from the
real commands."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

import backupctl.cli
from backupctl.cli import COMMANDS, _Command, cli

# What a top-level --help, --version or usage error must not import: these are slow.
HEAVY = ("psycopg", "boto3", "botocore", "rich", "platformdirs", "tomllib", "zoneinfo")

# Runs the console script's main() and then reports every module it imported.
PROBE = """
import atexit, sys
atexit.register(lambda: sys.__stderr__.write("\\nMODULES " + " ".join(sorted(sys.modules))))
from backupctl.cli import main
main()
"""


def real_commands() -> dict[str, click.Command]:
    """Every command the cli modules define: all of backupctl/cli imported, whatever
    COMMANDS says, so that a module missing from it is found too."""
    for module in pkgutil.iter_modules(backupctl.cli.__path__):
        importlib.import_module(f"backupctl.cli.{module.name}")
    return dict(cli.commands)


def test_the_table_lists_every_real_command_with_its_module_and_short_help() -> None:
    commands = real_commands()
    assert sorted(COMMANDS) == sorted(commands), "COMMANDS in backupctl/cli/__init__.py drifted"
    for name, command in commands.items():
        module, short_help = COMMANDS[name]
        assert command.callback is not None
        assert command.callback.__module__ == f"backupctl.cli.{module}", name
        assert not command.hidden and not command.deprecated, f"{name}: COMMANDS can't say so"
        assert short_help == command.get_short_help_str(limit=10**6), name
        stand_in = click.Command(name, help=short_help)
        for limit in range(1, 130):  # truncated alike at every terminal width
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def leaves(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found += leaves(command) if isinstance(command, click.Group) else [command]
    return found


def test_every_command_starts_logging_when_it_runs() -> None:
    real_commands()
    # cli itself only notes the logging options; _Command.invoke sets logging up.
    assert all(isinstance(command, _Command) for command in leaves(cli))


@pytest.mark.parametrize("width", [40, 60, 80, 100, 200])
def test_the_command_list_in_help_is_what_click_makes_from_the_real_commands(width: int) -> None:
    real_commands()
    ctx = click.Context(cli, info_name="backupctl", terminal_width=width)
    ours = ctx.make_formatter()
    cli.format_commands(ctx, ours)
    clicks = ctx.make_formatter()
    click.Group.format_commands(cli, ctx, clicks)  # click's own: asks every real command
    assert "run-nightly" in ours.getvalue()
    assert ours.getvalue() == clicks.getvalue()


def probe(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=60,
        check=False,
    )
    output, _, modules = proc.stderr.rpartition("\nMODULES ")
    proc.stderr = output
    return proc, set(modules.split())


@pytest.mark.parametrize(
    ("args", "exit_code", "says"),
    [
        (["--help"], 0, "run-nightly  Back up every enabled app once for tonight"),
        (["--version"], 0, "backupctl, version"),
        (["nosuchcommand"], 2, "Error: No such command 'nosuchcommand'."),
        (["run-nightl"], 2, "Did you mean 'run-nightly'?"),
    ],
)
def test_top_level_help_version_and_usage_errors_import_no_command_module(
    args: list[str], exit_code: int, says: str
) -> None:
    proc, modules = probe(*args)
    assert proc.returncode == exit_code, proc.stderr
    assert says in proc.stdout + proc.stderr
    assert not {m for m in modules if m.startswith("backupctl.cli.")}
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert "backupctl.config" not in modules


def test_a_bad_option_imports_only_its_command_module_and_nothing_heavy() -> None:
    proc, modules = probe("run-nightly", "--bogus")
    assert proc.returncode == 2
    assert "Error: No such option '--bogus'" in proc.stderr
    assert {m for m in modules if m.startswith("backupctl.cli.")} <= {
        "backupctl.cli.nightly",
        "backupctl.cli.common",
        "backupctl.cli.render",
    }
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert "backupctl.config" not in modules
    assert "backupctl.logs" not in modules  # logging starts when the command runs


def test_a_command_that_runs_starts_logging(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    proc, modules = probe("-v", "--config", str(missing), "runs")
    assert proc.returncode == 2
    assert f"backupctl: error: {missing}: no such configuration file" in proc.stderr
    assert "backupctl.logs" in modules


def test_a_subcommands_help_imports_its_module() -> None:
    proc, modules = probe("config", "check", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: backupctl config check" in proc.stdout
    assert "backupctl.cli.config_cmd" in modules
    assert "backupctl.cli.nightly" not in modules
