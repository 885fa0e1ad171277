"""Detect: findings leave the 'open' state within the policy's time."""

from __future__ import annotations

import heapq

from zerodrift.comply.evidence import Evidence, FindingRow, parse_time
from zerodrift.comply.registry import MAX_REFS, EvidenceRef, Verdict, control
from zerodrift.spec.models import Compliance

__all__ = ["findings_analysed_in_time"]


@control(
    "findings-analysed-in-time",
    title="Findings are analysed within the time the policy allows",
    csf=("DE.AE-02",),
)
def findings_analysed_in_time(evidence: Evidence) -> Verdict:
    """Findings leave the ``open`` status within the policy's time.

    A finding is analysed when it leaves the ``open`` status (its
    ``resolved_at`` is then the time) or is linked to an incident. It fails
    when that took longer than ``analyse_within`` for its severity, or when
    it is still open past that time.
    """
    rows = evidence.findings
    if not rows:
        return Verdict.not_applicable("no findings recorded")
    # Severities the spec leaves out keep their defaults.
    limits = {str(k): v for k, v in Compliance().analyse_within.items()}
    limits.update((str(k), v) for k, v in evidence.policy.analyse_within.items())
    now = parse_time(evidence.as_of)
    opened = {i.id: i.opened_at for i in evidence.incidents}
    late: list[EvidenceRef] = []
    pending = 0
    for row in rows:
        waited = _waited(row, evidence.as_of, opened)
        if waited is None:
            pending += 1
            waited = (now - parse_time(row.found_at)).total_seconds()
        if waited > limits.get(row.severity, limits["info"]):
            late.append(_late_ref(row, waited))
    if late:
        return Verdict.failed(
            f"{len(late)} of {len(rows)} findings were not analysed in time",
            heapq.nlargest(MAX_REFS, late, key=lambda r: r.recorded_at or ""),
        )
    newest = heapq.nlargest(5, rows, key=lambda r: (r.found_at, r.id))
    refs = [EvidenceRef("finding", r.id, r.severity, r.found_at) for r in newest]
    return Verdict.passed(
        f"{len(rows)} findings analysed in time ({pending} open, within policy)",
        refs,
    )


def _waited(row: FindingRow, as_of: str, opened: dict[str, str]) -> float | None:
    """Seconds until the finding was analysed, or ``None`` if not by ``as_of``.

    A finding is analysed when it is resolved, or when an incident that
    takes it over is opened (the incident then answers for the response).
    """
    if row.resolved_at is not None and row.resolved_at <= as_of:
        return (parse_time(row.resolved_at) - parse_time(row.found_at)).total_seconds()
    opened_at = opened.get(row.incident_id or "")
    if opened_at is not None:
        return max(
            0.0, (parse_time(opened_at) - parse_time(row.found_at)).total_seconds()
        )
    return None


def _late_ref(row: FindingRow, waited: float) -> EvidenceRef:
    state = "still open" if row.resolved_at is None else "analysed"
    return EvidenceRef(
        "finding",
        row.id,
        f"{row.severity}, {state} after {waited / 3600:.1f} h",
        row.found_at,
    )
