"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.support.example import Example, build_example


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    """The example fleet, initialised, committed with its lock, and built."""
    return build_example(tmp_path_factory)
