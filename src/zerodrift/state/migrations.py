"""Versioned schema migrations, applied automatically when a database opens.

Each migration has a number, a description and a function that runs inside
the migration transaction. Migrations are append-only: a released migration
is never edited, a later one changes what it did. Every migration not yet
recorded in ``schema_migrations`` runs, in number order, so migrations added
on parallel branches apply wherever they land. Numbers are grouped by area:
1-9 foundation, 10-19 image builds, 20-29 runtime and reconcile, 30-39
detection and response, 40-49 host file integrity, 50-59 the CI gate, 60-69
compliance. Both SQLite and PostgreSQL
run DDL transactionally, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Table, inspect, select, update

from zerodrift.state import schema
from zerodrift.state.times import utc_now

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


def _findings_lifecycle(conn: Connection) -> None:
    """Give findings a fingerprint, last sighting, count and resolution.

    Migration 2 creates the findings table from the current schema, so a new
    database already has these columns; an older one gets them here, with
    the fingerprint of each stored row filled in.
    """
    from zerodrift.detect.findings import fingerprint_of

    table = schema.findings
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    for name in ("fingerprint", "last_seen_at", "times_seen", "resolution"):
        if name not in present:
            _add_column(conn, table, table.c[name])
    indexes = {i["name"] for i in inspect(conn).get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexes:
            index.create(conn)
    rows = conn.execute(
        select(
            table.c.id,
            table.c.source,
            table.c.kind,
            table.c.environment,
            table.c.subject,
            table.c.found_at,
        ).where(table.c.fingerprint.is_(None))
    ).all()
    for row in rows:
        conn.execute(
            update(table)
            .where(table.c.id == row.id)
            .values(
                fingerprint=fingerprint_of(
                    row.source, row.kind, row.subject, row.environment
                ),
                last_seen_at=row.found_at,
                times_seen=1,
            )
        )


def _state_identity(conn: Connection) -> None:
    """Name this state database with a random id, once."""
    schema.state_identity.create(conn)
    conn.execute(
        schema.state_identity.insert().values(
            id=secrets.token_hex(16), created_at=utc_now()
        )
    )


def _add_column(conn: Connection, table: Table, column: Column[object]) -> None:
    kind = column.type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")


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
    Migration(2, "findings from every detector", _create(schema.findings)),
    Migration(
        20,
        "reconcile runs, journalled steps, deployed nodes, recoveries",
        _create(
            schema.reconcile_runs,
            schema.reconcile_steps,
            schema.reconcile_nodes,
            schema.recoveries,
        ),
    ),
    Migration(
        40,
        "host FIM: recorded baselines and check runs",
        _create(schema.fim_baselines, schema.fim_runs),
    ),
    Migration(60, "compliance report runs", _create(schema.report_runs)),
    Migration(30, "incidents of the drift response", _create(schema.incidents)),
    Migration(
        3, "findings: fingerprint, last sighting, resolution", _findings_lifecycle
    ),
    Migration(4, "a random id naming this state database", _state_identity),
)


def latest_version() -> int:
    """Return the highest schema version this code knows."""
    return max(m.version for m in MIGRATIONS)
