"""Findings: what every detector reports, stored once and emitted as OCSF.

A finding is something that differs from the signed, declared state. Every
detector (node drift, host file integrity, the CI gate) produces the same
:class:`Finding`, stores it in the ``findings`` table, and can render it as an
OCSF 1.1 *Detection Finding* (class 2004) so a SIEM ingests it unchanged.

A finding's *fingerprint* says what it is about: the detector, the kind, the
environment and the subject, not when it was seen nor the evidence of the
moment. While a finding with that fingerprint is open, seeing it again only
updates it (last seen, how often, the latest evidence), so a deviation that
persists over many checks is one finding and is analysed once. Once resolved,
seeing it again opens a new occurrence with its own id, so the history of
each occurrence stays as it was (see ADR 0067).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from zerodrift import __version__
from zerodrift._internal.canonical import canonical_json
from zerodrift.state.times import utc_now

# SQLAlchemy is imported by the functions that store and query: detectors
# import this module for Severity and Finding, and a check should not pay
# for the database layer before it needs it (ADR 0044).
if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zerodrift.state import Database

__all__ = [
    "Finding",
    "Recorded",
    "Severity",
    "fingerprint_of",
    "get_finding",
    "list_findings",
    "ocsf_file_activities",
    "record_findings",
    "resolve_findings",
    "resolve_unseen",
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

    @cached_property
    def fingerprint(self) -> str:
        """What the finding is about, whenever it is seen (see the module)."""
        return fingerprint_of(self.source, self.kind, self.subject, self.environment)

    @cached_property
    def id(self) -> str:
        """This occurrence: the fingerprint and when the occurrence began."""
        return _digest([self.fingerprint, self.found_at])

    @classmethod
    def from_stored(cls, row: Mapping[str, Any]) -> Finding:
        """Rebuild a stored finding (a row of :func:`list_findings`)."""
        return cls(
            source=row["source"],
            kind=row["kind"],
            severity=Severity.parse(row["severity"]),
            subject=row["subject"],
            summary=row["summary"],
            found_at=row["found_at"],
            details=dict(row["details"]),
            csf=tuple(row["csf"]),
            environment=row["environment"],
        )

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        body = asdict(self)
        body["severity"] = self.severity.label
        body["csf"] = list(self.csf)
        return {"id": self.id, **body}


def fingerprint_of(
    source: str, kind: str, subject: str, environment: str | None
) -> str:
    """The fingerprint of findings of ``kind`` by ``source`` about ``subject``."""
    return _digest([source, kind, subject, environment])


def _digest(parts: list[str | None]) -> str:
    """32 hex digits of SHA-256 over a JSON array: unambiguous and fast."""
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_findings` stored.

    Attributes:
        findings: The findings as stored, in the order given: a finding seen
            again while open carries its occurrence's ``found_at``, so its
            ``id`` is the stored one.
        new: Ids of the occurrences that began now (new or seen again after
            being resolved).
    """

    findings: list[Finding]
    new: list[str]


def record_findings(db: Database, found: Iterable[Finding]) -> Recorded:
    """Store findings: open new occurrences, update the open ones seen again.

    The whole batch is one transaction with a few statements per 500
    findings, so a host check that reports tens of thousands of changed
    files records them in seconds.

    Raises:
        OperationalError: The database failed.
    """
    from sqlalchemy import bindparam, select, update

    from zerodrift.state.schema import findings as findings_table

    items = list(found)
    if not items:
        return Recorded([], [])
    t = findings_table
    with db.write(lock="findings") as conn:
        open_rows = _open_occurrences(conn, items)
        # An occurrence given again after it was resolved is not a new one.
        known = {
            row_id
            for part in _chunks({i.id for i in items if i.fingerprint not in open_rows})
            for row_id in conn.execute(select(t.c.id).where(t.c.id.in_(part))).scalars()
        }
        plan = _plan_sightings(items, open_rows, known)
        inserts = list(plan.opened.values())
        for start in range(0, len(inserts), 500):
            conn.execute(t.insert(), inserts[start : start + 500])
        if plan.updates:
            conn.execute(
                update(t)
                .where(t.c.id == bindparam("occurrence"))
                .values(
                    last_seen_at=bindparam("seen_at"),
                    times_seen=t.c.times_seen + bindparam("sightings"),
                    severity=bindparam("new_severity"),
                    summary=bindparam("new_summary"),
                    details=bindparam("new_details"),
                ),
                list(plan.updates.values()),
            )
    return Recorded(plan.stored, plan.new)


def _open_occurrences(
    conn: Connection, items: list[Finding]
) -> dict[str, tuple[str, str, str]]:
    """The open occurrence of each fingerprint: (id, found_at, last seen).

    A small batch asks for its fingerprints; a large one reads the open
    findings of its detectors in one pass, which long lists of bound values
    would make slow on PostgreSQL.
    """
    from sqlalchemy import select

    from zerodrift.state.schema import findings as findings_table

    t = findings_table
    wanted = {i.fingerprint for i in items}
    columns = (t.c.id, t.c.fingerprint, t.c.found_at, t.c.last_seen_at)
    if len(wanted) <= _CHUNK:
        query = select(*columns).where(
            t.c.fingerprint.in_(sorted(wanted)), t.c.status != "resolved"
        )
    else:
        query = select(*columns).where(
            t.c.source.in_(sorted({i.source for i in items})),
            t.c.status != "resolved",
        )
    return {
        row.fingerprint: (row.id, row.found_at, row.last_seen_at or row.found_at)
        for row in conn.execute(query)
        if row.fingerprint in wanted
    }


@dataclass
class _Sightings:
    """What one batch of findings changes in the table."""

    stored: list[Finding] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    opened: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)


def _plan_sightings(
    items: list[Finding],
    open_rows: dict[str, tuple[str, str, str]],
    known: set[str],
) -> _Sightings:
    """Sort a batch into new occurrences and sightings of open ones (no IO)."""
    plan = _Sightings()
    for item in items:
        fingerprint = item.fingerprint
        if fingerprint not in open_rows:
            if item.id not in known:
                plan.opened[item.id] = {**_row(item), "status": "open"}
                plan.new.append(item.id)
                # Later items of the batch are sightings of this occurrence.
                open_rows[fingerprint] = (item.id, item.found_at, item.found_at)
            plan.stored.append(item)
            continue
        occurrence_id, first, last = open_rows[fingerprint]
        plan.stored.append(replace(item, found_at=first))
        seen_at = max(last, item.found_at)
        open_rows[fingerprint] = (occurrence_id, first, seen_at)
        opened = plan.opened.get(occurrence_id)
        if opened is not None:
            # A second sighting of an occurrence this batch opens.
            opened.update(
                last_seen_at=seen_at,
                times_seen=opened["times_seen"] + 1,
                severity=item.severity.label,
                summary=item.summary,
                details=canonical_json(item.details).decode(),
            )
            continue
        previous = plan.updates.get(occurrence_id)
        plan.updates[occurrence_id] = {
            "occurrence": occurrence_id,
            "seen_at": seen_at,
            "sightings": 1 + (previous["sightings"] if previous else 0),
            "new_severity": item.severity.label,
            "new_summary": item.summary,
            "new_details": canonical_json(item.details).decode(),
        }
    return plan


def _row(item: Finding) -> dict[str, Any]:
    return {
        "id": item.id,
        "fingerprint": item.fingerprint,
        "found_at": item.found_at,
        "last_seen_at": item.found_at,
        "times_seen": 1,
        "source": item.source,
        "kind": item.kind,
        "severity": item.severity.label,
        "environment": item.environment,
        "subject": item.subject,
        "summary": item.summary,
        "details": canonical_json(item.details).decode(),
        "csf": json.dumps(list(item.csf)),
    }


def resolve_findings(
    db: Database, ids: Iterable[str], *, resolution: str, at: str | None = None
) -> list[str]:
    """Resolve open findings, saying why; return the ids that were open.

    Args:
        db: The state database.
        ids: Full finding ids.
        resolution: Why they no longer need attention (shown and kept).
        at: When (database format; default: now).
    """
    from sqlalchemy import select, update

    from zerodrift.state.schema import findings as findings_table

    wanted = sorted(set(ids))
    if not wanted:
        return []
    t = findings_table
    values = {"status": "resolved", "resolved_at": at or utc_now()}
    open_ids: list[str] = []
    with db.write(lock="findings") as conn:
        for part in _chunks(wanted):
            found = list(
                conn.execute(
                    select(t.c.id).where(t.c.id.in_(part), t.c.status != "resolved")
                ).scalars()
            )
            if found:
                conn.execute(
                    update(t)
                    .where(t.c.id.in_(found))
                    .values(**values, resolution=resolution)
                )
            open_ids += found
    return sorted(open_ids)


def resolve_unseen(
    db: Database,
    *,
    source: str,
    environment: str | None,
    covers: Callable[[str, str], bool],
    seen: Iterable[str],
    resolution: str,
    at: str | None = None,
) -> list[str]:
    """Resolve the open findings a detector covered and no longer sees.

    A detector that has just looked at a set of things (the rules and
    targets of a gate run, the paths of a host baseline) knows that an open
    finding about one of them which it did not raise again is gone.

    Args:
        db: The state database.
        source: The detector.
        environment: The environment it looked at (``None``: none named).
        covers: Given a finding's kind and subject, whether the detector
            looked at it this time.
        seen: Fingerprints of what it found this time.
        resolution: Why they are resolved (for example "passed the gate").
        at: When (database format; default: now).

    Returns:
        The ids resolved.
    """
    from sqlalchemy import select

    from zerodrift.state.schema import findings as findings_table

    still = set(seen)
    t = findings_table
    with db.read() as conn:
        ids = [
            row.id
            for row in conn.execute(
                select(t.c.id, t.c.kind, t.c.subject, t.c.fingerprint).where(
                    t.c.source == source,
                    t.c.status != "resolved",
                    t.c.environment.is_(None)
                    if environment is None
                    else t.c.environment == environment,
                )
            )
            if row.fingerprint not in still and covers(row.kind, row.subject)
        ]
    return resolve_findings(db, ids, resolution=resolution, at=at)


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
    updated = 0
    with db.write(lock="findings") as conn:
        for part in _chunks(wanted):
            result = conn.execute(
                update(findings_table)
                .where(findings_table.c.id.in_(part))
                .values(**values)
            )
            updated += int(result.rowcount)
    return updated


_CHUNK = 500


def _chunks(values: Iterable[str], size: int = _CHUNK) -> Iterator[list[str]]:
    """``values`` in lists of at most ``size``: SQL engines cap bound values."""
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def list_findings(
    db: Database,
    *,
    source: str | None = None,
    status: str | None = None,
    since: str | None = None,
    environment: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield stored findings, oldest first, as dicts with their status."""
    from sqlalchemy import select

    from zerodrift.state.schema import findings as findings_table

    t = findings_table
    query = select(t).order_by(t.c.found_at, t.c.id)
    if source:
        query = query.where(t.c.source == source)
    if status:
        query = query.where(t.c.status == status)
    if since:
        query = query.where(t.c.found_at >= since)
    if environment:
        query = query.where(t.c.environment == environment)
    with db.read() as conn:
        for row in conn.execute(query):
            yield _stored(row._mapping)


def get_finding(db: Database, prefix: str) -> dict[str, Any]:
    """The stored finding whose id is or starts with ``prefix``.

    Raises:
        ConfigError: No finding, or more than one, has that id prefix.
    """
    from sqlalchemy import select

    from zerodrift.errors import ConfigError
    from zerodrift.state.schema import findings as findings_table

    t = findings_table
    text = prefix.strip().lower()
    with db.read() as conn:
        rows = conn.execute(
            select(t).where(t.c.id.startswith(text, autoescape=True)).limit(2)
        ).all()
    if len(rows) != 1 or len(text) < 4:
        what = "no finding" if not rows else "more than one finding"
        raise ConfigError(
            f"{what} has the id {prefix!r}",
            hint="list them with 'zerodrift findings --status all' and give "
            "at least 4 characters of an id",
            reference="finding-not-found" if not rows else "finding-ambiguous",
        )
    return _stored(rows[0]._mapping)


def _stored(mapping: Any) -> dict[str, Any]:
    data = dict(mapping)
    data["details"] = json.loads(data["details"])
    data["csf"] = json.loads(data["csf"])
    return data


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
