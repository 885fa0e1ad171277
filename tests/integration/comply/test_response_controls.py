"""Response controls on real incident rows, evidence objects and audit records.

Incidents are opened and updated through the responder's own incident store,
evidence is written by the product's evidence store, custody records go
through the audit trail; times are then back-dated where a test needs an age.
SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from tests.integration.comply.conftest import MakeEvidence, at
from zerodrift.comply.controls.response import (
    evidence_chain_of_custody,
    incidents_responded_in_time,
)
from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import Outcome
from zerodrift.govern.audit import AuditTrail
from zerodrift.respond.evidence import EvidenceStore
from zerodrift.respond.incidents import Incident, open_incident, update_incident
from zerodrift.state import Database
from zerodrift.state.schema import incidents


def incident(
    db: Database,
    node: str,
    severity: str,
    *,
    detected: str,
    resolved: str | None = None,
    env: str = "prod",
) -> Incident:
    """Open an incident for ``node`` at ``detected``; resolve it at ``resolved``."""
    found = [{"id": f"f-{node}", "severity": severity, "found_at": detected}]
    opened = open_incident(
        db, environment=env, service="web", node=node, policy="replace", findings=found
    )
    values = {"detected_at": detected, "opened_at": detected}
    if resolved is not None:
        values |= {"status": "resolved", "step": "verified", "resolved_at": resolved}
    with db.write() as conn:
        conn.execute(
            update(incidents).where(incidents.c.id == opened.id).values(**values)
        )
    return opened


def audit(db: Database, when: str, action: str, node: str, **details: object) -> None:
    AuditTrail(db, now=lambda: when).append(action, node, dict(details))


# --- incidents-responded-in-time ------------------------------------------


def test_no_incidents_is_not_applicable(make_evidence: MakeEvidence) -> None:
    verdict = incidents_responded_in_time(make_evidence())
    assert verdict.outcome is Outcome.NOT_APPLICABLE


def test_incidents_resolved_in_time_pass(
    db: Database, make_evidence: MakeEvidence
) -> None:
    # Defaults: critical within 1 h, low within 3 d.
    fast = incident(
        db, "web-1", "critical", detected=at(hours=-5), resolved=at(hours=-4.5)
    )
    waiting = incident(db, "web-2", "low", detected=at(hours=-30))
    verdict = incidents_responded_in_time(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert verdict.summary == "2 incidents resolved in time (1 open, within policy)"
    assert {r.id for r in verdict.evidence} == {fast.id, waiting.id}


def test_late_overdue_or_held_incidents_fail(
    db: Database, make_evidence: MakeEvidence
) -> None:
    late = incident(
        db, "web-1", "critical", detected=at(hours=-9), resolved=at(hours=-6)
    )
    overdue = incident(db, "web-2", "high", detected=at(hours=-5))
    incident(db, "web-3", "high", detected=at(hours=-3), resolved=at(hours=-2))
    held = incident(db, "web-4", "low", detected=at(hours=-2))
    audit(db, at(hours=-2), "incident.circuit-open", "web-4", incident=held.id)
    verdict = incidents_responded_in_time(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "3 of 4 incidents were not resolved in time"
    assert {r.id: r.note for r in verdict.evidence} == {
        late.id: "critical, resolved after 3.0 h",
        overdue.id: "high, still open after 5.0 h",
        held.id: "low, circuit breaker open, still open",
    }
    # Before the first incident was detected there was nothing to judge.
    earlier = make_evidence(as_of=at(hours=-9.5))
    assert incidents_responded_in_time(earlier).outcome is Outcome.NOT_APPLICABLE
    # Another environment saw none of this.
    other = make_evidence(environment="staging")
    assert incidents_responded_in_time(other).outcome is Outcome.NOT_APPLICABLE


def test_held_incident_resolved_by_a_person_passes(
    db: Database, make_evidence: MakeEvidence
) -> None:
    held = incident(db, "web-1", "low", detected=at(hours=-4), resolved=at(hours=-1))
    audit(db, at(hours=-4), "incident.circuit-open", "web-1", incident=held.id)
    audit(db, at(hours=-2), "incident.approved", "web-1", incident=held.id, by="ann")
    verdict = incidents_responded_in_time(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    # Before it was resolved, the held incident failed.
    before = incidents_responded_in_time(make_evidence(as_of=at(hours=-1.5)))
    assert before.outcome is Outcome.FAIL
    assert before.evidence[0].note == "low, circuit breaker open, still open"


def test_policy_response_times_apply(db: Database, make_evidence: MakeEvidence) -> None:
    incident(db, "web-1", "medium", detected=at(hours=-3))
    assert incidents_responded_in_time(make_evidence()).outcome is Outcome.PASS
    policy = make_evidence().policy.model_copy(
        update={"respond_within": {"medium": 3600}}
    )
    verdict = incidents_responded_in_time(make_evidence(policy=policy))
    assert verdict.outcome is Outcome.FAIL


# --- evidence-chain-of-custody --------------------------------------------


def quarantined(
    db: Database, store: EvidenceStore, node: str, *, when: str
) -> tuple[Incident, str]:
    """An incident that quarantined ``node`` and stored evidence with custody."""
    opened = incident(db, node, "high", detected=when)
    audit(db, when, "incident.quarantined", node, incident=opened.id)
    items = {"findings.json": b"[]", "logs.txt": f"logs of {node}\n".encode()}
    digest = store.put_manifest(opened.id, items)
    update_incident(db, opened, step="evidence", evidence=digest)
    audit(db, when, "evidence.captured", node, incident=opened.id, manifest=digest)
    return opened, digest


def test_intact_evidence_with_custody_passes(
    db: Database, make_evidence: MakeEvidence, tmp_path: Path
) -> None:
    store = EvidenceStore(tmp_path / "evidence")

    def make(**overrides: object) -> Evidence:
        return make_evidence(evidence_store=store.root, **overrides)

    incident(db, "web-0", "high", detected=at(hours=-3))  # alerted only
    assert evidence_chain_of_custody(make()).outcome is Outcome.NOT_APPLICABLE
    first, digest = quarantined(db, store, "web-1", when=at(hours=-2))
    verdict = evidence_chain_of_custody(make())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert [(r.id, r.note) for r in verdict.evidence] == [
        (first.id, f"evidence {digest}")
    ]
    assert evidence_chain_of_custody(make(as_of=at(hours=-2.5))).outcome is (
        Outcome.NOT_APPLICABLE
    )


def test_tampered_missing_or_unrecorded_evidence_fails(
    db: Database, make_evidence: MakeEvidence, tmp_path: Path
) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    tampered, digest = quarantined(db, store, "web-1", when=at(hours=-3))
    # Flip one byte of a real evidence item (the store writes them read-only).
    item = store.manifest(digest)["items"]["logs.txt"]["digest"]
    path = store.path(item)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    missing, manifest = quarantined(db, store, "web-2", when=at(hours=-2))
    store.path(manifest).unlink()
    unrecorded = incident(db, "web-3", "high", detected=at(hours=-1))
    audit(db, at(hours=-1), "incident.quarantined", "web-3", incident=unrecorded.id)
    verdict = evidence_chain_of_custody(make_evidence(evidence_store=store.root))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "3 of 3 incidents lack intact evidence"
    assert {r.id: r.note for r in verdict.evidence} == {
        tampered.id: f"evidence {item} was altered on disk",
        missing.id: f"evidence {manifest} is missing",
        unrecorded.id: "no evidence recorded",
    }


def test_evidence_without_custody_record_fails(
    db: Database, make_evidence: MakeEvidence, tmp_path: Path
) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    opened = incident(db, "web-1", "high", detected=at(hours=-2))
    audit(db, at(hours=-2), "incident.quarantined", "web-1", incident=opened.id)
    digest = store.put_manifest(opened.id, {"findings.json": b"[]"})
    update_incident(db, opened, step="evidence", evidence=digest)
    verdict = evidence_chain_of_custody(make_evidence(evidence_store=store.root))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence[0].note == "no custody record in the audit trail"


def test_a_finding_counts_as_analysed_when_its_incident_opened(
    db: Database, make_evidence: MakeEvidence
) -> None:
    from zerodrift.comply.controls.findings import findings_analysed_in_time
    from zerodrift.detect.findings import (
        Finding,
        Severity,
        record_findings,
        set_status,
    )

    # A critical finding must be analysed within 4 hours by default.
    found = Finding(
        "node",
        "executable-added",
        Severity.CRITICAL,
        "web-7",
        "a script appeared",
        at(hours=-10),
        environment="prod",
    )
    [finding_id] = record_findings(db, [found]).new
    assert findings_analysed_in_time(make_evidence()).outcome is Outcome.FAIL

    quick = incident(db, "web-7", "critical", detected=at(hours=-9))
    set_status(db, [finding_id], "open", incident=quick.id)
    verdict = findings_analysed_in_time(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary

    with db.write() as conn:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == quick.id)
            .values(opened_at=at(hours=-2))
        )
    verdict = findings_analysed_in_time(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "after 8.0 h" in (verdict.evidence[0].note or "")
