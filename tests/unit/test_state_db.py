from __future__ import annotations

from zerodrift.state import Database
from zerodrift.state.migrations import latest_version


def test_migrations_apply_once(database_url: str) -> None:
    db = Database.open(database_url)
    try:
        assert db.schema_version() == latest_version()
        assert db.migrate() == []
    finally:
        db.close()
