"""Options shared by several commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["Subparsers", "add_command", "add_env", "add_format"]

Subparsers = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_command(
    subparsers: Any,
    common: argparse.ArgumentParser,
    name: str,
    handler: Callable[..., int] | None,
    *,
    help: str,
    description: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Add a sub-command that shares the global options."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def add_format(parser: argparse.ArgumentParser, *extra: str) -> None:
    """Add ``--format table|json`` (plus command-specific formats)."""
    choices = ["table", "json", *extra]
    parser.add_argument(
        "--format",
        choices=choices,
        default="table",
        help=f"output format: {', '.join(choices)} (default: table)",
    )


def add_env(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add ``--env E``."""
    parser.add_argument(
        "--env",
        "-e",
        metavar="ENV",
        required=required,
        help="environment name from the spec",
    )
