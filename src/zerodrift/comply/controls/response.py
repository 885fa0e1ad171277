"""Respond: incidents are resolved in time, and their evidence stays intact."""

from __future__ import annotations

from zerodrift.comply.evidence import Evidence, IncidentRow, parse_time
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.errors import IntegrityError
from zerodrift.respond.evidence import EvidenceStore
from zerodrift.spec.models import Compliance

__all__ = ["evidence_chain_of_custody", "incidents_responded_in_time"]


def _ref(incident: IncidentRow, note: str) -> EvidenceRef:
    return EvidenceRef("incident", incident.id, note, incident.opened_at)


@control(
    "incidents-responded-in-time",
    title="Incidents are contained and eradicated within the policy's time",
    csf=("RS.MI-01", "RS.MI-02"),
)
def incidents_responded_in_time(evidence: Evidence) -> Verdict:
    """Every incident was resolved (node replaced and verified) in time.

    The time runs from detection to resolution and may not exceed
    ``respond_within`` for the incident's severity (that of its most severe
    finding). An incident still open past that time fails. An incident
    whose circuit breaker opened (the node was held, not replaced) fails
    until a person resolved it (``zerodrift respond``, recorded as
    ``incident.approved``).
    """
    rows = evidence.incidents
    if not rows:
        return Verdict.not_applicable("no incidents recorded")
    # Severities the spec leaves out keep their defaults.
    limits = {str(k): v for k, v in Compliance().respond_within.items()}
    limits.update((str(k), v) for k, v in evidence.policy.respond_within.items())
    held = _incidents_in(evidence, "incident.circuit-open")
    approved = _incidents_in(evidence, "incident.approved")
    now = parse_time(evidence.as_of)
    late: list[EvidenceRef] = []
    for row in rows:
        end = now if row.resolved_at is None else parse_time(row.resolved_at)
        took = (end - parse_time(row.detected_at)).total_seconds()
        state = "still open" if row.resolved_at is None else "resolved"
        limit = limits.get(row.severity, limits["info"])
        if row.id in held and not (row.resolved_at and row.id in approved):
            late.append(_ref(row, f"{row.severity}, circuit breaker open, {state}"))
        elif took > limit:
            late.append(_ref(row, f"{row.severity}, {state} after {took / 3600:.1f} h"))
    if late:
        return Verdict.failed(
            f"{len(late)} of {len(rows)} incidents were not resolved in time", late
        )
    pending = sum(1 for r in rows if r.resolved_at is None)
    return Verdict.passed(
        f"{len(rows)} incidents resolved in time ({pending} open, within policy)",
        [_ref(r, r.severity) for r in rows[-5:]],
    )


@control(
    "evidence-chain-of-custody",
    title="Evidence of quarantined nodes is stored intact, with a custody record",
    csf=("RS.AN-07",),
)
def evidence_chain_of_custody(evidence: Evidence) -> Verdict:
    """Evidence captured from quarantined nodes is preserved and accounted for.

    For every incident that quarantined a node by ``as_of``: its evidence
    manifest digest is recorded, the manifest and every item it lists are
    still in the evidence store with their SHA-256 unchanged, and the audit
    trail holds the ``evidence.captured`` custody record naming that
    manifest.
    """
    quarantined = _incidents_in(evidence, "incident.quarantined")
    rows = [r for r in evidence.incidents if r.id in quarantined]
    if not rows:
        return Verdict.not_applicable("no incident quarantined a node")
    custody = {
        (str(r.details.get("incident")), str(r.details.get("manifest")))
        for r in evidence.audit_of("evidence.captured")
    }
    store = (
        EvidenceStore(evidence.evidence_store)
        if evidence.evidence_store is not None
        else None
    )
    bad: list[EvidenceRef] = []
    good: list[EvidenceRef] = []
    for row in rows:
        problem = _custody_problem(row, store, custody)
        if problem:
            bad.append(_ref(row, problem))
        else:
            good.append(_ref(row, f"evidence {row.evidence}"))
    if bad:
        return Verdict.failed(
            f"{len(bad)} of {len(rows)} incidents lack intact evidence", bad
        )
    return Verdict.passed(
        f"{len(rows)} incidents' evidence intact, with custody records", good
    )


def _custody_problem(
    row: IncidentRow, store: EvidenceStore | None, custody: set[tuple[str, str]]
) -> str | None:
    if row.evidence is None:
        return "no evidence recorded"
    if (row.id, row.evidence) not in custody:
        return "no custody record in the audit trail"
    if store is None:
        return "no evidence store"
    try:
        manifest = store.manifest(row.evidence)
        for item in manifest.get("items", {}).values():
            store.get(str(item["digest"]))
    except IntegrityError as exc:
        return exc.message
    except (ValueError, KeyError, TypeError):
        return f"evidence manifest {row.evidence} is not readable"
    return None


def _incidents_in(evidence: Evidence, action: str) -> set[str]:
    """Ids of incidents named by ``action`` audit records by ``as_of``."""
    return {str(r.details.get("incident")) for r in evidence.audit_of(action)}
