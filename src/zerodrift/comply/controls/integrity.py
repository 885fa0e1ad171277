"""Detect: integrity monitoring ran recently wherever something is deployed."""

from __future__ import annotations

from datetime import datetime

from zerodrift.comply.evidence import Evidence, parse_time
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.govern.audit import AuditRecord

__all__ = ["integrity_monitoring_recent"]


def _ref(record: AuditRecord, note: str) -> EvidenceRef:
    return EvidenceRef("audit-record", str(record.seq), note, record.recorded_at)


@control(
    "integrity-monitoring-recent",
    title="Every deployed environment and every host baseline was checked "
    "for drift within the interval",
    csf=("DE.CM-09",),
)
def integrity_monitoring_recent(evidence: Evidence) -> Verdict:
    """Integrity monitoring is active: checks ran recently against signed state.

    Each environment with a successful deployment needs a finished node
    check (``zerodrift check``, audit action ``check.finished``), and each
    host baseline (``fim.init``) a host check (``fim.check``), newer than
    ``integrity_check_interval``. Nothing deployed and no baseline: not
    applicable.
    """
    deployed = sorted(
        {r.environment for r in evidence.deploy_runs if r.status == "succeeded"}
    )
    baselines = sorted({r.subject for r in evidence.audit_of("fim.init")})
    if not deployed and not baselines:
        return Verdict.not_applicable("nothing deployed and no host baseline")
    now = parse_time(evidence.as_of)
    interval = evidence.policy.integrity_check_interval
    problems: list[str] = []
    refs: list[EvidenceRef] = []
    checks = evidence.audit_of("check.finished")
    for env in deployed:
        newest = next((c for c in reversed(checks) if c.subject == env), None)
        problems += _judge(f"environment {env}", newest, now, interval, refs)
    host_checks = evidence.audit_of("fim.check")
    for path in baselines:
        newest = next((c for c in reversed(host_checks) if c.subject == path), None)
        problems += _judge(f"baseline {path}", newest, now, interval, refs)
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    targets = len(deployed) + len(baselines)
    return Verdict.passed(
        f"{targets} targets checked within {interval / 3600:g} h", refs
    )


def _judge(
    what: str,
    newest: AuditRecord | None,
    now: datetime,
    interval: int,
    refs: list[EvidenceRef],
) -> list[str]:
    if newest is None:
        return [f"{what}: never checked"]
    age = (now - parse_time(newest.recorded_at)).total_seconds()
    refs.append(_ref(newest, f"{what}: {newest.action}"))
    if age > interval:
        return [
            f"{what}: last checked {age / 3600:.1f} h ago "
            f"(policy: {interval / 3600:g} h)"
        ]
    return []
