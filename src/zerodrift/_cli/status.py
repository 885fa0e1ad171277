"""Exit codes of the ``zerodrift`` command, documented in the README."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """How a command ended. Drift is a result, not a failure to check."""

    OK = 0
    """Success: nothing to report."""
    FINDINGS = 1
    """The check ran and found something: drift, tampering, failed verification."""
    USAGE = 2
    """The command line was wrong (unknown option, missing argument)."""
    CONFIG = 3
    """The input was wrong: spec, configuration, key or passphrase."""
    OPERATIONAL = 4
    """The environment failed: IO, database, network, a missing tool."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C or SIGTERM."""
