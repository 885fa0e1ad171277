"""Times as the state database stores them: UTC, ISO 8601, microseconds.

Kept apart from :mod:`zerodrift.state.db` so commands that only format
times do not import SQLAlchemy at start-up.
"""

from __future__ import annotations

from datetime import UTC, datetime

from zerodrift.errors import ConfigError

__all__ = ["format_time", "parse_time", "utc_now"]


def utc_now() -> str:
    """Return the current time as stored in the database."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """Format an aware datetime the way the database stores times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str, *, field: str = "time") -> str:
    """Read a user-given ISO 8601 time or date into the stored format.

    ``2026-01-02``, ``2026-01-02T03:04``, ``2026-01-02 03:04:05+02:00`` and
    ``...Z`` are accepted; a time without an offset is taken as UTC.

    Raises:
        ConfigError: ``text`` is not an ISO 8601 date or time.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{field} {text!r} is not an ISO 8601 date or time",
            hint="write e.g. 2026-01-31, 2026-01-31T14:00 or 2026-01-31T14:00:00Z",
            reference="time-invalid",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_time(moment)
