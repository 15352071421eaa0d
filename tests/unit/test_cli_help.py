"""Every command explains itself: help text with an example, and the README names it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from backupctl.cli import register_commands

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
cli = register_commands()


def leaf_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaf_commands(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


@pytest.mark.parametrize(("name", "command"), leaf_commands(cli), ids=lambda v: str(v))
def test_every_command_has_help_with_an_example_and_is_in_the_readme(
    name: str, command: click.Command
) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert command.help and len(command.help) > 40
    assert "Example" in result.output, f"{name} --help has no example"
    assert f"backupctl {name}" in README, f"the README doesn't mention backupctl {name}"
