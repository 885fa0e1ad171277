"""The state database on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from zerodrift.errors import ConfigError, IntegrityError, OperationalError
from zerodrift.state import Database, normalise_url, parse_time
from zerodrift.state.migrations import MIGRATIONS, latest_version
from zerodrift.state.schema import schema_migrations


def test_migrations_apply_once(database_url: str) -> None:
    db = Database.open(database_url)
    try:
        assert db.schema_version() == latest_version()
        assert db.migrate() == []
        with db.read() as conn:
            applied = [row.version for row in conn.execute(schema_migrations.select())]
        assert sorted(applied) == sorted(m.version for m in MIGRATIONS)
    finally:
        db.close()


def test_each_state_database_has_an_id_of_its_own(
    database_url: str, tmp_path: Path
) -> None:
    db = Database.open(database_url)
    try:
        first = db.state_id()
        assert len(first) == 32
        assert db.migrate() == []
    finally:
        db.close()
    again = Database.open(database_url)
    other = Database.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert again.state_id() == first
        assert other.state_id() != first
        with other.write() as conn:
            conn.execute(text("DELETE FROM state_identity"))
        with pytest.raises(IntegrityError, match="has lost its id"):
            other.state_id()
    finally:
        again.close()
        other.close()


def test_fresh_database_reports_every_migration(database_url: str) -> None:
    db = Database.open(database_url, migrate=False)
    try:
        assert db.schema_version() == 0
        assert db.migrate() == sorted(m.version for m in MIGRATIONS)
    finally:
        db.close()


def test_database_newer_than_the_code_is_refused(database_url: str) -> None:
    db = Database.open(database_url)
    with db.write() as conn:
        conn.execute(
            schema_migrations.insert().values(
                version=latest_version() + 1000,
                description="from the future",
                applied_at="2099-01-01T00:00:00.000000Z",
            )
        )
    db.close()
    with pytest.raises(OperationalError) as caught:
        Database.open(database_url)
    assert caught.value.reference == "database-too-new"
    assert "upgrade zerodrift" in (caught.value.hint or "")


def test_missing_migration_from_another_branch_is_applied(database_url: str) -> None:
    """Migrations apply by set: a lower number added later still runs."""
    db = Database.open(database_url)
    with db.write() as conn:
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 2))
        conn.execute(text("DROP TABLE findings"))
    assert db.migrate() == [2]
    db.close()


def test_failed_migration_leaves_schema_unchanged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerodrift.state import db as db_module
    from zerodrift.state.migrations import Migration

    def explode(conn: object) -> None:
        raise RuntimeError("migration bug")

    broken = (*MIGRATIONS, Migration(latest_version() + 1, "broken", explode))
    monkeypatch.setattr(db_module, "MIGRATIONS", broken)
    monkeypatch.setattr(db_module, "latest_version", lambda: broken[-1].version)
    db = Database.open(database_url, migrate=False)
    with pytest.raises(RuntimeError):
        db.migrate()
    assert db.schema_version() == 0  # the earlier migrations rolled back too
    db.close()


def test_unreachable_postgres_is_operational_and_hides_password() -> None:
    with pytest.raises(OperationalError) as caught:
        Database.open("postgresql://zd:hunter2-secret@127.0.0.1:9/zd")
    error = caught.value
    assert error.reference == "database-unreachable"
    assert "hunter2" not in error.diagnostics()
    assert "***" in error.message
    assert error.hint is not None
    assert "server is running" in error.hint


@pytest.mark.parametrize(
    "url", ["mysql://zd:hunter2-secret@db/zd", "::not a url hunter2-secret::"]
)
def test_bad_urls_are_config_errors_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        normalise_url(url)
    assert caught.value.reference == "database-url-invalid"
    assert "hunter2" not in caught.value.diagnostics()


def test_postgres_urls_use_psycopg() -> None:
    assert normalise_url("postgresql://u:p@h/db").startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-01-31", "2026-01-31T00:00:00.000000Z"),
        ("2026-01-31T14:00", "2026-01-31T14:00:00.000000Z"),
        ("2026-01-31T14:00:00Z", "2026-01-31T14:00:00.000000Z"),
        ("2026-01-31T16:00:00+02:00", "2026-01-31T14:00:00.000000Z"),
    ],
)
def test_parse_time(given: str, stored: str) -> None:
    assert parse_time(given) == stored


@pytest.mark.parametrize("given", ["yesterday", "2026-13-01", "31/01/2026", ""])
def test_parse_time_refuses_non_iso(given: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_time(given, field="--since")
    assert "--since" in caught.value.message
    assert caught.value.reference == "time-invalid"
