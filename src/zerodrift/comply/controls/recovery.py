"""Recover: every environment passed a recovery drill within the policy's interval."""

from __future__ import annotations

from zerodrift.comply.evidence import Evidence, Recovery, parse_time
from zerodrift.comply.registry import EvidenceRef, Verdict, control

__all__ = ["recovery_drill_recent"]


def _ref(drill: Recovery, note: str) -> EvidenceRef:
    return EvidenceRef("recovery", str(drill.id), note, drill.finished_at)


@control(
    "recovery-drill-recent",
    title="Each environment passed a timed recovery drill within the interval",
    csf=("RC.RP-05", "ID.IM-02"),
)
def recovery_drill_recent(evidence: Evidence) -> Verdict:
    """Recovery is exercised: a recent drill rebuilt the environment.

    For each deployed environment (one with a successful apply or recovery,
    or a drill, recorded), the newest drill finished within
    ``recovery_drill_interval``, succeeded (every node rebuilt from trusted
    images and healthy) and recorded its recovery time (RTO).
    """
    drills = [r for r in evidence.recoveries if r.drill]
    deployed = {r.environment for r in evidence.deploy_runs if r.status == "succeeded"}
    environments = sorted(deployed | {d.environment for d in drills})
    if not environments:
        return Verdict.not_applicable("no deployment recorded: nothing to recover")
    interval = evidence.policy.recovery_drill_interval
    now = parse_time(evidence.as_of)
    problems: list[str] = []
    refs: list[EvidenceRef] = []
    for env in environments:
        newest = next((d for d in reversed(drills) if d.environment == env), None)
        if newest is None:
            problems.append(f"{env}: no recovery drill recorded")
            continue
        age = (now - parse_time(newest.finished_at)).total_seconds()
        problem = _judge(newest, age, interval)
        if problem:
            problems.append(f"{env}: {problem}")
        rto = (
            "no RTO"
            if newest.rto_seconds is None
            else f"RTO {newest.rto_seconds:.1f} s"
        )
        refs.append(_ref(newest, f"{env}, {newest.status}, {rto}"))
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    return Verdict.passed(
        f"{len(environments)} environments drilled within {interval / 86400:g} d",
        refs,
    )


def _judge(drill: Recovery, age: float, interval: int) -> str | None:
    if drill.status != "succeeded":
        return f"newest drill {drill.status}"
    if drill.rto_seconds is None:
        return "newest drill recorded no recovery time"
    if age > interval:
        return (
            f"newest drill is {age / 86400:.1f} d old (policy: {interval / 86400:g} d)"
        )
    return None
