"""The type of the in-process ``cli`` fixture, for annotating tests."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import CliResult

__all__ = ["Cli", "CliResult"]

Cli = Callable[..., CliResult]
