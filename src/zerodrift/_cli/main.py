"""Entry point of the ``zerodrift`` command: parsing, dispatch, error display."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from zerodrift import __version__
from zerodrift._cli.commands import COMMANDS
from zerodrift._cli.context import Context
from zerodrift._cli.status import ExitCode
from zerodrift.errors import (
    ConfigError,
    IntegrityError,
    OperationalError,
    VerificationError,
    ZerodriftError,
)

__all__ = ["build_parser", "entrypoint", "main"]

_logger = logging.getLogger("zerodrift")

_DESCRIPTION = """\
zerodrift makes immutable infrastructure practical and provable: build signed,
reproducible images; deploy by replacement only; detect any drift from the
signed golden state; respond by quarantine, evidence and redeploy; and report
NIST CSF compliance from recorded evidence.
"""

_EPILOG = """\
exit codes: 0 success, 1 findings (drift, tampering, failed verification),
2 usage error, 3 configuration error, 4 operational failure, 130 interrupted.
Run 'zerodrift COMMAND --help' for a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser, one sub-parser per command module."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-C",
        "--project",
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="project folder (default: search upwards from the current folder)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="more output and a traceback with errors; -vv adds debug logs",
    )
    common.add_argument(
        "-q", "--quiet", action="count", default=argparse.SUPPRESS, help="less output"
    )

    parser = argparse.ArgumentParser(
        prog="zerodrift",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument(
        "--version", action="version", version=f"zerodrift {__version__}"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code instead of exiting."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    _configure_logging(verbosity)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    ctx = Context(args)
    try:
        return int(handler(ctx))
    except ZerodriftError as exc:
        return _report(exc, verbosity)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`); say nothing more on a dead pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OPERATIONAL
    except Exception as exc:
        if verbosity >= 1:
            traceback.print_exc()
        sys.stderr.write(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "  hint: this is a bug in zerodrift; rerun with -v and report the output\n"
        )
        return ExitCode.OPERATIONAL
    finally:
        ctx.close()


def exit_code_for(exc: ZerodriftError) -> ExitCode:
    """Map an error family to its documented exit code."""
    if isinstance(exc, (VerificationError, IntegrityError)):
        return ExitCode.FINDINGS
    if isinstance(exc, ConfigError):
        return ExitCode.CONFIG
    if isinstance(exc, OperationalError):
        return ExitCode.OPERATIONAL
    return ExitCode.OPERATIONAL


def _report(exc: ZerodriftError, verbosity: int) -> int:
    if verbosity >= 1:
        traceback.print_exc()
    sys.stderr.write(exc.diagnostics() + "\n")
    if verbosity < 1:
        sys.stderr.write("  (rerun with -v for details)\n")
    return exit_code_for(exc)


def _configure_logging(verbosity: int) -> None:
    level_name = os.environ.get("ZERODRIFT_LOG_LEVEL", "").upper()
    if level_name in logging.getLevelNamesMapping():
        level = logging.getLevelNamesMapping()[level_name]
    else:
        level = {
            -2: logging.CRITICAL,
            -1: logging.ERROR,
            0: logging.WARNING,
            1: logging.INFO,
        }.get(max(-2, min(verbosity, 2)), logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    _logger.handlers[:] = [handler]
    _logger.setLevel(level)
    _logger.propagate = False


def _stop(signum: int, _frame: object) -> None:
    # SIGTERM (a CI job cancelled, `timeout`, systemd) unwinds like Ctrl-C, so
    # every clean-up path runs and nothing is left half-written.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def entrypoint() -> NoReturn:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
