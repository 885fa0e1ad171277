"""Rendering results: rich tables for people, versioned JSON for machines.

Results go to stdout; logs and diagnostics go to stderr. Every JSON document
carries ``schema_version`` and ``kind`` so consumers can rely on its shape.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "JSON_SCHEMA_VERSION",
    "PIPE_WIDTH",
    "console",
    "emit_json",
    "emit_jsonl",
    "err_console",
    "table",
]

JSON_SCHEMA_VERSION = 1

# Width of tables written to a pipe or file. Rich would assume 80 columns and
# squeeze every cell into an ellipsis; a log file or `| less -S` has room.
PIPE_WIDTH = 200


def _width(stream: object) -> int | None:
    """Return the width to force, or ``None`` to let rich measure a terminal."""
    isatty = getattr(stream, "isatty", None)
    if (callable(isatty) and isatty()) or os.environ.get("COLUMNS"):
        return None
    return PIPE_WIDTH


def console() -> Console:
    """A console on stdout that degrades to plain, wide text when piped."""
    from rich.console import Console  # imported when used: start-up time

    return Console(
        file=sys.stdout, soft_wrap=True, highlight=False, width=_width(sys.stdout)
    )


def err_console() -> Console:
    """A console on stderr, for progress and notes."""
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, width=_width(sys.stderr))


def emit_json(kind: str, data: dict[str, Any]) -> None:
    """Print one JSON document with the schema version and kind."""
    document = {"schema_version": JSON_SCHEMA_VERSION, "kind": kind, **data}
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str))
    sys.stdout.write("\n")


def emit_jsonl(items: Iterable[dict[str, Any]]) -> None:
    """Print one compact JSON object per line (for log shippers)."""
    for item in items:
        sys.stdout.write(json.dumps(item, separators=(",", ":"), default=str) + "\n")


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Print a table; ``None`` cells show as a dash."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("-" if cell is None else str(cell) for cell in row))
    console().print(grid)
