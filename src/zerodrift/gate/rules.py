"""The catalog of gate rules: what each checks, why, and its CSF mapping.

The identifiers are declared once in the spec models (``GATE_RULES``) so the
spec can validate policy entries; this module adds what people read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zerodrift.detect.findings import Severity

__all__ = ["RULES", "Rule", "rule"]

Mode = Literal["enforce", "warn", "off"]


@dataclass(frozen=True)
class Rule:
    """One gate rule.

    Attributes:
        id: Stable identifier, used in policy, waivers and reports.
        title: One line, shown in tables and SARIF.
        help: Why it matters and how to comply (SARIF help text).
        csf: CSF 2.0 subcategories the rule supports.
        severity: Severity of a failure, for findings and SARIF ranking.
        default: Mode when the policy does not name the rule.
    """

    id: str
    title: str
    help: str
    csf: tuple[str, ...]
    severity: Severity = Severity.HIGH
    default: Mode = "enforce"


_SUPPLY = ("ID.RA-09", "PR.PS-06")
_RUNTIME = ("PR.PS-01", "PR.AA-05")

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "spec-valid",
            "The fleet spec is valid",
            "Every other rule reads the spec; fix each reported problem "
            "('zerodrift spec validate' lists them).",
            ("PR.PS-01", "GV.PO-01"),
            Severity.MEDIUM,
        ),
        Rule(
            "spec-committed",
            "The spec and the files images copy are committed",
            "What is deployed must be what is reviewed: commit fleet.yaml, "
            "the files its images copy and the trusted keys before the gate runs.",
            ("PR.PS-01", "PR.PS-06"),
        ),
        Rule(
            "commit-signed",
            "The commit is signed by an allowed key",
            "Sign commits (git commit -S) with a key listed in "
            "policy.commits.allowed_signers or policy.commits.allowed_keys.",
            ("PR.PS-06", "ID.RA-09"),
            Severity.HIGH,
            default="off",
        ),
        Rule(
            "waiver-expired",
            "No gate waiver has expired",
            "A waiver accepts a risk until its expiry date; renew it with a new "
            "reason or fix the underlying failure and delete it.",
            ("GV.PO-01",),
            Severity.MEDIUM,
        ),
        Rule(
            "image-in-store",
            "Each image of the environment is built and in the store",
            "Build the image ('zerodrift build') from the committed spec.",
            ("ID.AM-02", "PR.PS-06"),
        ),
        Rule(
            "image-signed",
            "Each image is signed by a key trusted for the environment",
            "Sign the image with a key that trust.environments allows for the "
            "environment being deployed.",
            _SUPPLY,
            Severity.CRITICAL,
        ),
        Rule(
            "image-provenance",
            "Each image has a provenance attestation",
            "Rebuild the image with zerodrift so the build emits signed "
            "SLSA provenance.",
            _SUPPLY,
        ),
        Rule(
            "image-sbom",
            "Each image has an SBOM attestation",
            "Rebuild the image so the build attaches a signed CycloneDX SBOM.",
            ("ID.AM-02", "ID.RA-09"),
            Severity.MEDIUM,
        ),
        Rule(
            "image-golden-manifest",
            "Each image has a signed golden manifest",
            "Rebuild the image so the build attaches its golden file manifest; "
            "drift detection compares nodes against it.",
            ("PR.DS-01", "DE.CM-09"),
        ),
        Rule(
            "image-provenance-ancestor",
            "Each image was built from an ancestor of the current commit",
            "The provenance names a commit that is not in this branch's history: "
            "rebuild from this branch.",
            _SUPPLY,
        ),
        Rule(
            "image-promotion",
            "Each image was verified in the earlier environments first",
            "Deploy and verify the same digest in the environments "
            "policy.promotion lists before this one.",
            ("PR.PS-02", "PR.PS-06"),
        ),
        Rule(
            "image-hardening",
            "No high-severity hardening finding without a valid waiver",
            "Fix the finding in the image recipe, or add a waiver with a reason "
            "and an expiry under images.<name>.hardening.waivers.",
            ("PR.PS-01", "PR.PS-05"),
        ),
        Rule(
            "plan-immutable-update",
            "Immutable resources are replaced, never updated in place",
            "Make the change force a replacement (terraform apply -replace=ADDR, "
            "or lifecycle.replace_triggered_by), or list the type elsewhere than "
            "policy.terraform.immutable_types if it is not compute.",
            ("PR.PS-01", "PR.PS-02"),
        ),
        Rule(
            "plan-inventory",
            "The plan changes only declared resources",
            "Add the resource address to policy.terraform.inventory in the spec, "
            "or remove it from the configuration.",
            ("ID.AM-02", "ID.AM-08"),
            Severity.MEDIUM,
        ),
        Rule(
            "manifest-image-digest",
            "Container images are pinned by digest",
            "Reference images as name@sha256:<digest>; a tag can be moved to "
            "different content after review.",
            ("ID.RA-09", "PR.PS-02"),
        ),
        Rule(
            "manifest-privilege-escalation",
            "Containers set allowPrivilegeEscalation: false",
            "Set securityContext.allowPrivilegeEscalation: false on the container.",
            _RUNTIME,
            Severity.MEDIUM,
        ),
        Rule(
            "manifest-privileged",
            "Containers are not privileged",
            "Remove securityContext.privileged: true; grant single capabilities "
            "if the workload really needs one.",
            _RUNTIME,
            Severity.CRITICAL,
        ),
        Rule(
            "manifest-host-path",
            "Pods mount no host paths",
            "Replace hostPath volumes with emptyDir, a ConfigMap, a Secret or a "
            "persistent volume claim.",
            ("PR.PS-01", "PR.IR-01"),
        ),
        Rule(
            "manifest-readonly-root",
            "Containers have a read-only root filesystem",
            "Set securityContext.readOnlyRootFilesystem: true and mount emptyDir "
            "volumes where the workload writes.",
            ("PR.PS-01", "PR.DS-01"),
            Severity.MEDIUM,
        ),
        Rule(
            "manifest-pods-exec",
            "No role grants exec into pods",
            "Remove pods/exec (verbs create, get or *) from the Role; debugging "
            "a running node is a change that bypasses review.",
            ("PR.AA-05",),
        ),
    )
}


def rule(rule_id: str) -> Rule:
    """Return the catalog entry for ``rule_id``.

    Raises:
        KeyError: No rule has that identifier.
    """
    return RULES[rule_id]
