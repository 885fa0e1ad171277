"""Findings: what every detector reports, stored once and emitted as OCSF.

A finding is something that differs from the signed, declared state. Every
detector (node drift, host file integrity, the CI gate) produces the same
:class:`Finding`, stores it in the ``findings`` table, and can render it as an
OCSF 1.1 *Detection Finding* (class 2004) so a SIEM ingests it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from zerodrift import __version__
from zerodrift._internal.canonical import canonical_json, sha256_hex
from zerodrift.state.times import utc_now

# SQLAlchemy is imported by the functions that store and query: detectors
# import this module for Severity and Finding, and a check should not pay
# for the database layer before it needs it (ADR 0044).
if TYPE_CHECKING:
    from zerodrift.state import Database

__all__ = [
    "Finding",
    "Severity",
    "list_findings",
    "ocsf_file_activities",
    "record_findings",
    "set_status",
    "to_ocsf",
]

OCSF_VERSION = "1.1.0"


class Severity(IntEnum):
    """Severity, numbered as OCSF's ``severity_id``."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @property
    def label(self) -> str:
        """Lower-case name, as stored and shown."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Read a stored or user-given severity name."""
        return cls[text.upper()]


@dataclass(frozen=True)
class Finding:
    """One detected deviation.

    Attributes:
        source: The detector (``node``, ``fim``, ``gate``...).
        kind: What deviated (``file-changed``, ``config-drift``...).
        severity: How bad it is.
        subject: What it is about (a node, a host path, an image).
        summary: One sentence for people.
        found_at: Database-format UTC time.
        details: Evidence: old and new values, paths, digests.
        csf: CSF 2.0 subcategories the finding supports (``DE.CM-09``...).
        environment: The environment, when the subject belongs to one.
    """

    source: str
    kind: str
    severity: Severity
    subject: str
    summary: str
    found_at: str
    details: dict[str, Any] = field(default_factory=dict)
    csf: tuple[str, ...] = ()
    environment: str | None = None

    @property
    def id(self) -> str:
        """A content-derived identifier: the same finding gets the same id."""
        body = asdict(self)
        body["severity"] = self.severity.label
        return sha256_hex(canonical_json(body))[:32]

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        body = asdict(self)
        body["severity"] = self.severity.label
        body["csf"] = list(self.csf)
        return {"id": self.id, **body}


def record_findings(db: Database, found: Iterable[Finding]) -> list[str]:
    """Store findings (each once); return the ids of those that were new.

    Raises:
        OperationalError: The database failed.
    """
    from zerodrift.state.schema import findings as findings_table

    new: list[str] = []
    with db.write() as conn:
        for item in found:
            inserted = db.insert_new(
                conn,
                findings_table,
                {
                    "id": item.id,
                    "found_at": item.found_at,
                    "source": item.source,
                    "kind": item.kind,
                    "severity": item.severity.label,
                    "environment": item.environment,
                    "subject": item.subject,
                    "summary": item.summary,
                    "details": canonical_json(item.details).decode(),
                    "csf": json.dumps(list(item.csf)),
                    "status": "open",
                },
            )
            if inserted:
                new.append(item.id)
    return new


def set_status(
    db: Database,
    ids: Iterable[str],
    status: str,
    *,
    at: str | None = None,
    incident: str | None = None,
) -> int:
    """Set the status (``open``, ``resolved``...) of stored findings.

    Args:
        db: The state database.
        ids: The findings to update.
        status: The new status; ``resolved`` also records ``resolved_at``.
        at: When it happened (database format; default: now).
        incident: The incident that took the findings over, if any.

    Returns:
        How many findings were updated.
    """
    from sqlalchemy import update

    from zerodrift.state.schema import findings as findings_table

    wanted = sorted(set(ids))
    if not wanted:
        return 0
    values: dict[str, Any] = {"status": status}
    if status == "resolved":
        values["resolved_at"] = at or utc_now()
    if incident is not None:
        values["incident_id"] = incident
    with db.write() as conn:
        result = conn.execute(
            update(findings_table)
            .where(findings_table.c.id.in_(wanted))
            .values(**values)
        )
    return int(result.rowcount)


def list_findings(
    db: Database,
    *,
    source: str | None = None,
    status: str | None = None,
    since: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield stored findings, oldest first, as dicts with their status."""
    from sqlalchemy import select

    from zerodrift.state.schema import findings as findings_table

    query = select(findings_table).order_by(findings_table.c.found_at)
    if source:
        query = query.where(findings_table.c.source == source)
    if status:
        query = query.where(findings_table.c.status == status)
    if since:
        query = query.where(findings_table.c.found_at >= since)
    with db.read() as conn:
        for row in conn.execute(query):
            data = dict(row._mapping)
            data["details"] = json.loads(data["details"])
            data["csf"] = json.loads(data["csf"])
            yield data


def to_ocsf(item: Finding, *, resource_type: str = "container") -> dict[str, Any]:
    """Render a finding as an OCSF 1.1 Detection Finding (class_uid 2004)."""
    moment = datetime.strptime(item.found_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    millis = int(moment.replace(tzinfo=UTC).timestamp() * 1000)
    return {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "severity_id": int(item.severity),
        "severity": item.severity.name.capitalize(),
        "status_id": 1,
        "status": "New",
        "time": millis,
        "message": item.summary,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "zerodrift",
                "vendor_name": "zerodrift",
                "version": __version__,
            },
            "labels": list(item.csf),
        },
        "finding_info": {
            "uid": item.id,
            "title": item.summary,
            "types": [f"{item.source}/{item.kind}"],
            "created_time": millis,
            "analytic": {"name": item.kind, "type_id": 1, "type": "Rule"},
        },
        "resources": [
            {
                "name": item.subject,
                "type": resource_type,
                **({"group": {"name": item.environment}} if item.environment else {}),
            }
        ],
        "unmapped": {"details": item.details, "csf": list(item.csf)},
    }


_FILE_ACTIVITY = {
    "added": (1, "Create"),
    "changed": (3, "Update"),
    "deleted": (4, "Delete"),
}


def ocsf_file_activities(item: Finding) -> list[dict[str, Any]]:
    """Render a finding's files as OCSF 1.1 File System Activity events (1001).

    Findings whose evidence lists files (``details.files`` or
    ``details.changes`` with ``path`` and optional ``kind``) give one event
    per file, linked to the Detection Finding by its ``uid``; others give
    none.
    """
    moment = datetime.strptime(item.found_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    millis = int(moment.replace(tzinfo=UTC).timestamp() * 1000)
    listed = list(item.details.get("files") or []) + list(
        item.details.get("changes") or []
    )
    events = []
    for entry in listed:
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        activity_id, activity = _FILE_ACTIVITY.get(
            str(entry.get("kind", "added")), (99, "Other")
        )
        path = str(entry["path"])
        events.append(
            {
                "class_uid": 1001,
                "class_name": "File System Activity",
                "category_uid": 1,
                "category_name": "System Activity",
                "activity_id": activity_id,
                "activity_name": activity,
                "type_uid": 100100 + activity_id,
                "severity_id": int(item.severity),
                "severity": item.severity.name.capitalize(),
                "time": millis,
                "message": f"{activity} {path} on {item.subject}",
                "metadata": {
                    "version": OCSF_VERSION,
                    "product": {
                        "name": "zerodrift",
                        "vendor_name": "zerodrift",
                        "version": __version__,
                    },
                    "correlation_uid": item.id,
                },
                "device": {"name": item.subject, "type_id": 0, "type": "Unknown"},
                "file": {
                    "path": path,
                    "name": path.rsplit("/", 1)[-1],
                    "type_id": 1,
                    "type": "Regular File",
                    **({"size": entry["size"]} if "size" in entry else {}),
                },
            }
        )
    return events
