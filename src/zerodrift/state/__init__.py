"""The state database (SQLite by default, PostgreSQL when configured)."""

from zerodrift.state.db import (
    Database,
    format_time,
    normalise_url,
    parse_time,
    utc_now,
)

__all__ = ["Database", "format_time", "normalise_url", "parse_time", "utc_now"]
