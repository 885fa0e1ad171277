"""The state database (SQLite by default, PostgreSQL when configured).

:class:`Database` (and SQLAlchemy with it) is imported on first use, so a
command that only formats times starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zerodrift.state.times import format_time, parse_time, utc_now

if TYPE_CHECKING:
    from zerodrift.state.db import Database, normalise_url

__all__ = ["Database", "format_time", "normalise_url", "parse_time", "utc_now"]

_LAZY = frozenset({"Database", "normalise_url"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from zerodrift.state import db

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
