"""Fixtures for host FIM tests: a project, a tree, and a CLI bound to both."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small real tree: files, folders, a link, a FIFO, odd modes."""
    root = tmp_path / "tree"
    (root / "etc" / "app").mkdir(parents=True)
    (root / "bin").mkdir()
    for index in range(20):
        (root / "etc" / "app" / f"conf{index:02d}").write_text(f"setting={index}\n")
    (root / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    os.chmod(root / "bin" / "tool", 0o4755)  # noqa: S103 - test fixture
    (root / "bin" / "link").symlink_to("tool")
    os.mkfifo(root / "bin" / "fifo")
    return root


@pytest.fixture
def fim(cli: Any, project: Path) -> Callable[..., Any]:
    """Run ``zerodrift -C <project> fim ...``."""

    def run(*argv: str) -> Any:
        return cli("-C", str(project), "fim", *argv)

    return run


def report(result: Any) -> dict[str, Any]:
    """Parse a ``--format json`` check report."""
    data: dict[str, Any] = json.loads(result.out)
    return data


def by_path(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Changes of a report keyed by path."""
    return {c["path"]: c for c in data["changes"]}
