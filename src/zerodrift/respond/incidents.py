"""Incident records: one per drifted node, from detection to recovery.

An incident moves through the playbook's steps (``opened``, ``replaced``,
``quarantined``, ``evidence``, ``destroyed``, ``verified``); each step is
committed before the next starts, so a responder killed mid-playbook resumes
where it stopped. Statuses: ``awaiting-approval`` (policy ``approve``),
``responding``, ``circuit-open`` (the service drifted too often: the node
stays quarantined until a person runs the playbook), ``resolved``,
``failed``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from zerodrift.errors import ConfigError
from zerodrift.state import Database, utc_now
from zerodrift.state.schema import incidents as incidents_table

__all__ = [
    "OPEN_STATUSES",
    "STEPS",
    "Incident",
    "find_open",
    "get_incident",
    "list_incidents",
    "open_incident",
    "recent_incidents",
    "quarantined_nodes",
    "seconds_between",
    "update_incident",
]

STEPS = ("opened", "replaced", "quarantined", "evidence", "destroyed", "verified")
OPEN_STATUSES = ("awaiting-approval", "responding", "circuit-open")


@dataclass
class Incident:
    """One incident, as stored."""

    id: str
    environment: str
    service: str
    node: str
    policy: str
    status: str
    step: str
    detected_at: str
    opened_at: str
    findings: list[dict[str, Any]]
    resolved_at: str | None = None
    ttd_seconds: float | None = None
    ttr_seconds: float | None = None
    replacement: str | None = None
    evidence: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def done(self, step: str) -> bool:
        """Whether the playbook already completed ``step``."""
        return STEPS.index(self.step) >= STEPS.index(step)

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "id": self.id,
            "environment": self.environment,
            "service": self.service,
            "node": self.node,
            "policy": self.policy,
            "status": self.status,
            "step": self.step,
            "detected_at": self.detected_at,
            "opened_at": self.opened_at,
            "resolved_at": self.resolved_at,
            "ttd_seconds": self.ttd_seconds,
            "ttr_seconds": self.ttr_seconds,
            "replacement": self.replacement,
            "evidence": self.evidence,
            "findings": self.findings,
            "detail": self.detail,
        }


def open_incident(
    db: Database,
    *,
    environment: str,
    service: str,
    node: str,
    policy: str,
    findings: Sequence[dict[str, Any]],
    status: str = "responding",
    ttd_seconds: float | None = None,
) -> Incident:
    """Open an incident for ``node``, or return the one already open.

    A finding on a node already being answered is not acted on twice.
    """
    with db.write(lock="incidents") as conn:
        existing = conn.execute(
            select(incidents_table).where(
                incidents_table.c.node == node,
                incidents_table.c.status.in_(OPEN_STATUSES),
            )
        ).first()
        if existing is not None:
            return _incident(existing._mapping)
        now = utc_now()
        incident = Incident(
            id=secrets.token_hex(8),
            environment=environment,
            service=service,
            node=node,
            policy=policy,
            status=status,
            step="opened",
            detected_at=min((f["found_at"] for f in findings), default=now),
            opened_at=now,
            findings=list(findings),
            ttd_seconds=ttd_seconds,
        )
        row = incident.to_dict()
        row["findings"] = json.dumps(row["findings"], sort_keys=True)
        row["detail"] = json.dumps(row["detail"], sort_keys=True)
        conn.execute(incidents_table.insert().values(**row))
    return incident


def update_incident(db: Database, incident: Incident, **changes: Any) -> Incident:
    """Commit ``changes`` to an incident and return it updated."""
    for key, value in changes.items():
        setattr(incident, key, value)
    values = {
        k: json.dumps(v, sort_keys=True) if k in ("findings", "detail") else v
        for k, v in changes.items()
    }
    with db.write(lock="incidents") as conn:
        conn.execute(
            update(incidents_table)
            .where(incidents_table.c.id == incident.id)
            .values(**values)
        )
    return incident


def get_incident(db: Database, incident_id: str) -> Incident:
    """Load an incident by id or unique id prefix.

    Raises:
        ConfigError: No incident, or more than one, matches.
    """
    with db.read() as conn:
        rows = conn.execute(
            select(incidents_table).where(
                incidents_table.c.id.startswith(incident_id, autoescape=True)
            )
        ).fetchall()
    if len(rows) != 1:
        raise ConfigError(
            f"{'no' if not rows else 'more than one'} incident matches {incident_id!r}",
            hint="list them with zerodrift incidents",
            reference="incident-unknown",
        )
    return _incident(rows[0]._mapping)


def find_open(db: Database, node: str) -> Incident | None:
    """The open incident of ``node``, if any."""
    with db.read() as conn:
        row = conn.execute(
            select(incidents_table).where(
                incidents_table.c.node == node,
                incidents_table.c.status.in_(OPEN_STATUSES),
            )
        ).first()
    return _incident(row._mapping) if row is not None else None


def list_incidents(db: Database, environment: str | None = None) -> Iterator[Incident]:
    """Yield incidents, oldest first."""
    query = select(incidents_table).order_by(incidents_table.c.opened_at)
    if environment:
        query = query.where(incidents_table.c.environment == environment)
    with db.read() as conn:
        rows = conn.execute(query).fetchall()
    for row in rows:
        yield _incident(row._mapping)


def seconds_between(start: str, end: str) -> float:
    """Seconds from one database time to another."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    delta = datetime.strptime(end, fmt) - datetime.strptime(start, fmt)
    return round(delta.total_seconds(), 3)


def _incident(row: Any) -> Incident:
    data = dict(row)
    data["findings"] = json.loads(data["findings"])
    data["detail"] = json.loads(data["detail"])
    return Incident(**data)


def quarantined_nodes(db: Database, environment: str) -> set[str]:
    """Nodes an incident has quarantined and not yet destroyed."""
    with db.read() as conn:
        rows = conn.execute(
            select(incidents_table.c.node).where(
                incidents_table.c.environment == environment,
                incidents_table.c.step.in_(("quarantined", "evidence")),
            )
        )
        return {row.node for row in rows}


def recent_incidents(db: Database, environment: str, service: str, since: str) -> int:
    """How many incidents of ``service`` opened at or after ``since``."""
    with db.read() as conn:
        rows = conn.execute(
            select(incidents_table.c.id).where(
                incidents_table.c.environment == environment,
                incidents_table.c.service == service,
                incidents_table.c.opened_at >= since,
            )
        ).fetchall()
    return len(rows)
