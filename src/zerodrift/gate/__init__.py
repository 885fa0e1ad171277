"""The CI gate: reject any change that is not verified.

The core is :func:`evaluate`, a pure function from a :class:`GateInput`
(parsed spec, repository facts, image facts, Terraform plans, Kubernetes
manifests) to a :class:`GateReport`; :func:`run_gate` gathers those inputs
from disk, git and an :class:`ImageEvidence` source. An admission webhook can
call :func:`evaluate` with manifests it received and facts from its own store.

Example::

    from zerodrift.gate import GateRequest, run_gate

    report = run_gate(GateRequest(root=Path("."), environment="prod",
                                  plans=[Path("plan.json")]))
    if report.rejected:
        for result in report.failures():
            print(result.rule, result.target, result.message)
"""

from zerodrift.gate.engine import GateInput, evaluate
from zerodrift.gate.evidence import (
    ATTESTATION_TYPES,
    HardeningFinding,
    ImageEvidence,
    ImageFacts,
    collect_image_facts,
)
from zerodrift.gate.results import Check, GateReport, Result, Status
from zerodrift.gate.rules import RULES, Rule
from zerodrift.gate.run import GateRequest, run_gate

__all__ = [
    "ATTESTATION_TYPES",
    "RULES",
    "Check",
    "GateInput",
    "GateReport",
    "GateRequest",
    "HardeningFinding",
    "ImageEvidence",
    "ImageFacts",
    "Result",
    "Rule",
    "Status",
    "collect_image_facts",
    "evaluate",
    "run_gate",
]
