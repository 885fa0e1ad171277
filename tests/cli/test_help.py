"""Every command documents itself; the version and exit codes are as documented."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Cli
from zerodrift import __version__
from zerodrift._cli.main import build_parser
from zerodrift._cli.status import ExitCode


def command_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_paths(sub, (*prefix, name))


ALL_COMMANDS = sorted(command_paths(build_parser()))


def test_the_foundation_commands_exist() -> None:
    assert {
        ("init",),
        ("spec", "validate"),
        ("spec", "schema"),
        ("keygen",),
        ("inventory",),
        ("audit", "log"),
        ("audit", "verify"),
        ("audit", "checkpoint"),
    } <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "zerodrift")
def test_help_works_for_every_command(cli: Cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith("usage: zerodrift")
    assert " ".join(("zerodrift", *path)) in result.out
    assert "-v, --verbose" in result.out


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert (result.code, result.out) == (0, f"zerodrift {__version__}\n")


def test_no_command_is_a_usage_error(cli: Cli) -> None:
    result = cli()
    assert result.code == ExitCode.USAGE
    assert "usage: zerodrift" in result.err


@pytest.mark.parametrize(
    "argv",
    [["frobnicate"], ["audit"], ["spec", "validate", "--format", "xml"], ["--bogus"]],
)
def test_bad_command_lines_exit_2(cli: Cli, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == ExitCode.USAGE
    assert result.out == ""
    assert "error:" in result.err


def test_readme_documents_every_exit_code() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = dict(re.findall(r"^\| +(\d+) \| `([A-Z_]+)` \|", readme, re.MULTILINE))
    assert {int(code): name for code, name in table.items()} == {
        int(code): code.name for code in ExitCode
    }
