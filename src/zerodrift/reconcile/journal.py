"""The reconcile journal: every step written to the state database first.

A step row is committed *before* the runtime is touched and marked done or
failed after. A run killed at any point therefore leaves a ``started`` step
naming the node it was about to create or destroy; the next run marks the
old run ``interrupted`` and converges from what it observes, because node
names are unique and nodes are matched by identity labels, never by name.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from zerodrift._internal.canonical import canonical_json
from zerodrift.state import Database, utc_now
from zerodrift.state.schema import reconcile_nodes, reconcile_runs, reconcile_steps

__all__ = ["Journal"]


class Journal:
    """Journal of one reconcile run.

    Args:
        db: The state database.
        environment: The environment reconciled.
    """

    def __init__(self, db: Database, environment: str) -> None:
        self.db = db
        self.environment = environment
        self.run_id = ""
        self._seq = 0

    def interrupt_stale_runs(self) -> list[str]:
        """Mark runs of this environment that never finished as interrupted.

        Only call this while holding the environment lock.
        """
        with self.db.write() as conn:
            stale = list(
                conn.execute(
                    select(reconcile_runs.c.run_id).where(
                        reconcile_runs.c.environment == self.environment,
                        reconcile_runs.c.status == "running",
                    )
                ).scalars()
            )
            if stale:
                conn.execute(
                    update(reconcile_runs)
                    .where(reconcile_runs.c.run_id.in_(stale))
                    .values(status="interrupted", finished_at=utc_now())
                )
                conn.execute(
                    update(reconcile_steps)
                    .where(
                        reconcile_steps.c.run_id.in_(stale),
                        reconcile_steps.c.status == "started",
                    )
                    .values(status="interrupted", finished_at=utc_now())
                )
        return stale

    def start(self, kind: str, spec_digest: str, git_commit: str | None) -> str:
        """Open a run; return its id."""
        self.run_id = secrets.token_hex(16)
        with self.db.write() as conn:
            conn.execute(
                reconcile_runs.insert().values(
                    run_id=self.run_id,
                    environment=self.environment,
                    kind=kind,
                    status="running",
                    started_at=utc_now(),
                    spec_digest=spec_digest,
                    git_commit=git_commit,
                    summary="{}",
                )
            )
        return self.run_id

    def finish(self, status: str, summary: Mapping[str, Any]) -> None:
        """Close the run with its final status and a summary."""
        with self.db.write() as conn:
            conn.execute(
                update(reconcile_runs)
                .where(reconcile_runs.c.run_id == self.run_id)
                .values(
                    status=status,
                    finished_at=utc_now(),
                    summary=canonical_json(dict(summary)).decode(),
                )
            )

    def begin_step(
        self,
        action: str,
        node: str,
        *,
        service: str | None,
        identity: str | None,
        reason: str,
    ) -> int:
        """Journal a step before it runs; return its row id."""
        self._seq += 1
        with self.db.write() as conn:
            result = conn.execute(
                reconcile_steps.insert().values(
                    run_id=self.run_id,
                    seq=self._seq,
                    action=action,
                    service=service,
                    node=node,
                    identity=identity,
                    reason=reason,
                    status="started",
                    started_at=utc_now(),
                    detail="{}",
                )
            )
            key = result.inserted_primary_key
            return int(key[0]) if key is not None else 0

    def end_step(
        self, step_id: int, status: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Mark a step done or failed."""
        with self.db.write() as conn:
            conn.execute(
                update(reconcile_steps)
                .where(reconcile_steps.c.id == step_id)
                .values(
                    status=status,
                    finished_at=utc_now(),
                    detail=json.dumps(dict(detail or {}), sort_keys=True),
                )
            )

    def node_created(
        self,
        name: str,
        *,
        service: str,
        identity: str,
        image_digest: str,
        generation: int,
        spec: Mapping[str, Any],
        facts_digest: str | None,
    ) -> None:
        """Remember a node zerodrift created, its spec and its live facts."""
        with self.db.write() as conn:
            conn.execute(
                reconcile_nodes.insert().values(
                    name=name,
                    environment=self.environment,
                    service=service,
                    identity=identity,
                    image_digest=image_digest,
                    generation=generation,
                    spec=canonical_json(dict(spec)).decode(),
                    facts_digest=facts_digest,
                    created_at=utc_now(),
                )
            )

    def node_destroyed(self, name: str) -> None:
        """Mark a node destroyed."""
        with self.db.write() as conn:
            conn.execute(
                update(reconcile_nodes)
                .where(
                    reconcile_nodes.c.name == name,
                    reconcile_nodes.c.destroyed_at.is_(None),
                )
                .values(destroyed_at=utc_now())
            )

    def recorded_facts(self) -> dict[str, str | None]:
        """Live-facts digest recorded at creation, per live node name."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(reconcile_nodes.c.name, reconcile_nodes.c.facts_digest).where(
                    reconcile_nodes.c.environment == self.environment,
                    reconcile_nodes.c.destroyed_at.is_(None),
                )
            )
            return {row.name: row.facts_digest for row in rows}

    def image_digests_at(self, commit: str) -> dict[str, str]:
        """Image digest per service deployed by the newest good run at ``commit``.

        Returns an empty dict when no successful apply or recovery of this
        environment was recorded at that commit.
        """
        with self.db.read() as conn:
            run_id = conn.execute(
                select(reconcile_runs.c.run_id)
                .where(
                    reconcile_runs.c.environment == self.environment,
                    reconcile_runs.c.git_commit == commit,
                    reconcile_runs.c.status == "succeeded",
                    reconcile_runs.c.kind.in_(("apply", "recover")),
                )
                .order_by(reconcile_runs.c.started_at.desc())
                .limit(1)
            ).scalar()
            if run_id is None:
                return {}
            created = select(reconcile_steps.c.node).where(
                reconcile_steps.c.run_id == run_id,
                reconcile_steps.c.action == "create",
                reconcile_steps.c.status == "done",
            )
            rows = conn.execute(
                select(reconcile_nodes.c.service, reconcile_nodes.c.image_digest)
                .where(reconcile_nodes.c.name.in_(created))
                .order_by(reconcile_nodes.c.created_at)
            )
            return {row.service: row.image_digest for row in rows}

    def node_spec(self, name: str) -> dict[str, Any] | None:
        """The spec a node was created from, if zerodrift created it."""
        with self.db.read() as conn:
            value = conn.execute(
                select(reconcile_nodes.c.spec).where(reconcile_nodes.c.name == name)
            ).scalar()
        return None if value is None else dict(json.loads(value))
