"""Versioned schema migrations, applied automatically when a database opens.

Each migration has a number, a description and a function that runs inside
the migration transaction. Migrations are append-only: a released migration
is never edited, a later one changes what it did. Both SQLite and PostgreSQL
run DDL transactionally, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Table

from zerodrift.state import schema

__all__ = ["MIGRATIONS", "Migration", "latest_version"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create(*tables: Table) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        for table in tables:
            table.create(conn)

    return run


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "audit trail, checkpoints, inventory snapshots, spec revisions",
        _create(
            schema.audit_records,
            schema.audit_checkpoints,
            schema.inventory_snapshots,
            schema.spec_revisions,
        ),
    ),
)


def latest_version() -> int:
    """Return the schema version this code expects."""
    return MIGRATIONS[-1].version
