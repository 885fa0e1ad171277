"""Protect: what is deployed passed the CI gate first."""

from __future__ import annotations

from zerodrift.comply.evidence import DeployRun, Evidence
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.govern.audit import AuditRecord

__all__ = ["gate_passed_before_deploy"]


def _run_ref(run: DeployRun, note: str) -> EvidenceRef:
    return EvidenceRef("reconcile-run", run.run_id, note, run.started_at)


@control(
    "gate-passed-before-deploy",
    title="The newest deployment of each environment passed the CI gate first",
    csf=("PR.PS-06", "ID.RA-09"),
)
def gate_passed_before_deploy(evidence: Evidence) -> Verdict:
    """Changes are verified before they run.

    For each environment's newest successful apply or recovery, a
    ``gate.run`` audit record with the verdict ``passed`` exists for the same
    git commit and that environment (or every environment), recorded before
    the run started; and every image the run created nodes from is one the
    gate judged (gate runs recorded before digests were kept are matched by
    commit only).
    """
    deployed = _newest_good_runs(evidence.deploy_runs)
    if not deployed:
        return Verdict.not_applicable("no successful deployment recorded")
    gates = evidence.audit_of("gate.run")
    refs: list[EvidenceRef] = []
    problems: list[str] = []
    for run in deployed:
        gate = _passing_gate(gates, run)
        if gate is None:
            commit = (run.git_commit or "no commit")[:12]
            problems.append(f"{run.environment}: no passing gate run for {commit}")
            refs.append(_run_ref(run, "deployed without a passing gate"))
            continue
        ungated = _ungated_digests(gate, run)
        if ungated:
            problems.append(
                f"{run.environment}: deployed {', '.join(d[:19] for d in ungated)} "
                f"at {(run.git_commit or '')[:12]}, which the gate did not judge"
            )
            refs.append(_run_ref(run, "deployed images the gate did not judge"))
            continue
        refs.append(_run_ref(run, f"{run.environment} at {run.git_commit}"))
        refs.append(
            EvidenceRef("audit-record", str(gate.seq), "gate passed", gate.recorded_at)
        )
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    return Verdict.passed(
        f"{len(deployed)} environments deployed only after a passing gate", refs
    )


def _newest_good_runs(runs: list[DeployRun]) -> list[DeployRun]:
    newest: dict[str, DeployRun] = {}
    for run in runs:
        if run.status == "succeeded":
            newest[run.environment] = run
    return [newest[env] for env in sorted(newest)]


def _ungated_digests(gate: AuditRecord, run: DeployRun) -> list[str]:
    judged = gate.details.get("images")
    if not isinstance(judged, dict):
        return []
    return sorted(run.image_digests - set(judged.values()))


def _passing_gate(gates: list[AuditRecord], run: DeployRun) -> AuditRecord | None:
    if run.git_commit is None:
        return None
    for gate in reversed(gates):
        if (
            gate.recorded_at <= run.started_at
            and gate.subject in (run.environment, "*")
            and gate.details.get("commit") == run.git_commit
        ):
            return gate if gate.details.get("verdict") == "passed" else None
    return None
