"""Inventory snapshots in the state database, for inventory over time."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from zerodrift._internal.canonical import canonical_digest, canonical_json
from zerodrift.identify.inventory import Inventory
from zerodrift.state import Database
from zerodrift.state.schema import inventory_snapshots

__all__ = ["latest_snapshot", "record_snapshot"]


def record_snapshot(
    db: Database, inventory: Inventory, *, taken_at: str, git_commit: str | None
) -> int:
    """Store ``inventory`` and return the snapshot's id.

    Raises:
        OperationalError: The database failed.
    """
    content = inventory.to_dict()
    environment = (
        inventory.environments[0] if len(inventory.environments) == 1 else None
    )
    with db.write() as conn:
        result = conn.execute(
            inventory_snapshots.insert().values(
                taken_at=taken_at,
                environment=environment,
                spec_digest=inventory.spec_digest,
                git_commit=git_commit,
                content_digest=canonical_digest(content),
                content=canonical_json(content).decode(),
            )
        )
        (snapshot_id,) = result.inserted_primary_key or (0,)
        return int(snapshot_id)


def latest_snapshot(
    db: Database, *, at_or_before: str | None = None
) -> dict[str, Any] | None:
    """Return the newest snapshot (optionally as of a time), or ``None``."""
    query = select(inventory_snapshots).order_by(
        inventory_snapshots.c.taken_at.desc(), inventory_snapshots.c.id.desc()
    )
    if at_or_before is not None:
        query = query.where(inventory_snapshots.c.taken_at <= at_or_before)
    with db.read() as conn:
        row = conn.execute(query.limit(1)).first()
    if row is None:
        return None
    return {
        "id": row.id,
        "taken_at": row.taken_at,
        "environment": row.environment,
        "spec_digest": row.spec_digest,
        "git_commit": row.git_commit,
        "content_digest": row.content_digest,
        "content": json.loads(row.content),
    }
