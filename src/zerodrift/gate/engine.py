"""The gate's pure core: facts in, results and a verdict out.

:func:`evaluate` reads no files and runs no commands. It takes a
:class:`GateInput` (the parsed spec, source facts, image facts, plans and
manifests) and returns a :class:`~zerodrift.gate.results.GateReport`.

Evaluation has two steps. Rules produce raw :class:`Check` outcomes; then
the policy applies: the rule's mode for the environment (``off`` drops it,
``warn`` turns a failure into a warning), and waivers that are unexpired and
match the rule, target and environment turn a failure into ``waived``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import cast

from zerodrift.detect.findings import Severity
from zerodrift.errors import Location
from zerodrift.gate.evidence import ATTESTATION_TYPES, ImageFacts
from zerodrift.gate.kubernetes import Manifest, check_manifests
from zerodrift.gate.results import Check, GateReport, Result, Status
from zerodrift.gate.rules import RULES
from zerodrift.gate.source import SourceFacts
from zerodrift.gate.terraform import Plan, check_plan
from zerodrift.spec.models import Fleet, GateWaiver, Policy, RuleMode
from zerodrift.spec.resolve import resolve_services

__all__ = ["GateInput", "evaluate", "images_for", "rule_mode"]

Locator = Callable[[tuple[str | int, ...]], Location]
SpecProblem = tuple[Location, str, str | None]
_BLOCKING = (Severity.HIGH, Severity.CRITICAL)


@dataclass(frozen=True)
class GateInput:
    """Everything the gate judges, already read and parsed.

    Attributes:
        spec_name: How reports name the spec file.
        fleet: The validated spec, or ``None`` when it is invalid.
        spec_problems: Located problems when the spec is invalid.
        locate: Finds a spec key path's line; ``None`` gives file-only locations.
        environment: The environment gated, or ``None`` for all.
        today: The date waivers are judged against (UTC).
        source: Repository facts, or ``None`` when not gathered.
        images: Facts per image recipe, or ``None`` without an evidence source.
        trusted_key_ids: Key ids allowed to sign for the environment.
        plans: Parsed Terraform plans.
        manifests: Parsed Kubernetes objects.
    """

    spec_name: str
    fleet: Fleet | None
    today: date
    spec_problems: tuple[SpecProblem, ...] = ()
    locate: Locator | None = None
    environment: str | None = None
    source: SourceFacts | None = None
    images: Mapping[str, ImageFacts] | None = None
    trusted_key_ids: frozenset[str] = frozenset()
    plans: Sequence[Plan] = ()
    manifests: Sequence[Manifest] = ()

    def where(self, *path: str | int) -> Location:
        """Location of a spec key path."""
        if self.locate is None:
            return Location(self.spec_name, field=".".join(map(str, path)) or None)
        return self.locate(path)

    @property
    def policy(self) -> Policy:
        """The spec's policy, or the defaults when the spec is invalid."""
        return self.fleet.policy if self.fleet is not None else Policy()


def evaluate(gate: GateInput) -> GateReport:
    """Run every rule over ``gate`` and apply the policy.

    Returns:
        The report; ``report.rejected`` is the verdict.
    """
    notes: list[str] = []
    checks = _spec_checks(gate)
    checks += _image_checks(gate, notes)
    for plan in gate.plans:
        checks += check_plan(plan, gate.policy.terraform)
    checks += check_manifests(gate.manifests)
    results = tuple(_apply_policy(gate, checks))
    explained = set(_IMAGE_RULES) if gate.images is None else set()
    skipped = sorted({r.rule for r in results if r.status is Status.SKIP} - explained)
    if skipped:
        notes.append("not evaluated: " + ", ".join(skipped))
    judged = {} if gate.images is None else gate.images
    return GateReport(
        gate.environment,
        results,
        tuple(notes),
        {name: judged[name].digest for name in sorted(judged)},
    )


def rule_mode(policy: Policy, rule_id: str, environment: str | None) -> RuleMode:
    """The mode of ``rule_id`` in ``environment`` (environment over policy)."""
    layers = [policy.rules]
    override = policy.environments.get(environment) if environment else None
    if override is not None:
        layers.insert(0, override.rules)
    for layer in layers:
        mode = cast("Mapping[str, RuleMode]", layer).get(rule_id)
        if mode is not None:
            return mode
    return RULES[rule_id].default


def images_for(fleet: Fleet, environment: str | None) -> list[str]:
    """Image recipes deployed to ``environment`` (every recipe for ``None``)."""
    if environment is None:
        return sorted(fleet.images)
    resolved = resolve_services(fleet, environment)
    return sorted({r.service.image for r in resolved.values() if r.service.replicas})


# --- Spec and source --------------------------------------------------------


def _spec_checks(gate: GateInput) -> list[Check]:
    if gate.fleet is None:
        return [
            Check("spec-valid", gate.spec_name, False, message, loc, hint)
            for loc, message, hint in gate.spec_problems
        ] or [Check("spec-valid", gate.spec_name, False, "the spec is invalid")]
    checks = [
        Check(
            "spec-valid",
            gate.spec_name,
            True,
            "the spec is valid",
            Location(gate.spec_name),
        )
    ]
    checks += _committed_checks(gate)
    checks += _signature_checks(gate)
    checks += _waiver_checks(gate)
    return checks


def _committed_checks(gate: GateInput) -> list[Check]:
    source = gate.source
    if source is None:
        return [Check("spec-committed", gate.spec_name, None, "not checked")]
    if not source.in_repository or source.head is None:
        what = (
            "is not in a git repository"
            if not source.in_repository
            else ("is in a repository without commits")
        )
        return [
            Check(
                "spec-committed",
                gate.spec_name,
                False,
                f"the project {what}",
                Location(gate.spec_name),
                "commit the project to git; the gate judges committed changes",
            )
        ]
    if not source.dirty:
        return [
            Check(
                "spec-committed",
                gate.spec_name,
                True,
                f"spec and image sources match commit {source.head[:12]}",
                Location(gate.spec_name),
            )
        ]
    return [
        Check(
            "spec-committed",
            path,
            False,
            f"{path} has changes that are not committed",
            Location(path),
            f"commit it (git add {path} && git commit), or discard the change",
        )
        for path in source.dirty
    ]


def _signature_checks(gate: GateInput) -> list[Check]:
    signature = gate.source.signature if gate.source else None
    head = gate.source.head if gate.source else None
    target = f"commit {head[:12]}" if head else "HEAD"
    if signature is None:
        return [Check("commit-signed", target, None, "signature not checked")]
    allowed = gate.policy.commits.allowed_keys
    hint = (
        "sign the commit (git commit -S) with a key listed in "
        "policy.commits.allowed_signers / allowed_keys"
    )
    if signature.status != "G":
        return [
            Check(
                "commit-signed",
                target,
                False,
                f"commit signature is {_SIGNATURE_WORDS.get(signature.status, '?')}",
                None,
                hint,
            )
        ]
    if allowed and signature.fingerprint not in allowed:
        return [
            Check(
                "commit-signed",
                target,
                False,
                f"signed by key {signature.fingerprint}, which is not allowed",
                gate.where("policy", "commits", "allowed_keys"),
                hint,
            )
        ]
    who = signature.signer or signature.fingerprint or "an allowed key"
    return [Check("commit-signed", target, True, f"signed by {who}")]


_SIGNATURE_WORDS = {
    "N": "missing",
    "B": "bad",
    "U": "good but made by an untrusted key",
    "X": "good but expired",
    "Y": "made by an expired key",
    "R": "made by a revoked key",
    "E": "not checkable (key unknown to git)",
}


def _waiver_checks(gate: GateInput) -> list[Check]:
    checks = []
    for index, waiver in enumerate(gate.policy.waivers):
        if not _applies_to_env(waiver, gate.environment):
            continue
        target = f"waiver {waiver.rule} {waiver.target}"
        expired = gate.today > waiver.expires
        checks.append(
            Check(
                "waiver-expired",
                target,
                not expired,
                f"expired on {waiver.expires.isoformat()}: {waiver.reason}"
                if expired
                else f"valid until {waiver.expires.isoformat()}",
                gate.where("policy", "waivers", index),
                "fix the failure it covered and delete the waiver, or renew it "
                "with a new expiry and reason",
            )
        )
    return checks


def _applies_to_env(waiver: GateWaiver, environment: str | None) -> bool:
    return not waiver.environments or environment in waiver.environments


# --- Images -----------------------------------------------------------------

_IMAGE_RULES = (
    "image-in-store",
    "image-signed",
    "image-provenance",
    "image-sbom",
    "image-golden-manifest",
    "image-provenance-ancestor",
    "image-promotion",
    "image-hardening",
)


def _image_checks(gate: GateInput, notes: list[str]) -> list[Check]:
    fleet = gate.fleet
    if fleet is None:
        return []
    names = images_for(fleet, gate.environment)
    if gate.images is None:
        notes.append(
            "image rules need an image evidence source (the image store); "
            "none is configured"
        )
        return [
            Check(r, "images", None, "no image evidence source") for r in _IMAGE_RULES
        ]
    checks: list[Check] = []
    for name in names:
        facts = gate.images.get(name) or ImageFacts(name, None)
        checks += _one_image(gate, facts, gate.where("images", name))
    return checks


def _one_image(gate: GateInput, facts: ImageFacts, where: Location) -> list[Check]:
    name = facts.image
    if facts.digest is None:
        return [
            Check(
                "image-in-store",
                name,
                False,
                f"image {name!r} has no build in the store",
                where,
                f"build it: zerodrift build {name}",
            )
        ]
    short = facts.digest[:19]
    checks = [Check("image-in-store", name, True, f"{name} is {short}", where)]
    checks.append(_signed_check(gate, facts, where))
    for rule_id, accepted in ATTESTATION_TYPES.items():
        present = bool(facts.attestation_types & accepted)
        what = rule_id.removeprefix("image-").replace("-", " ")
        checks.append(
            Check(
                rule_id,
                name,
                present,
                f"{name} ({short}) has a {what} attestation"
                if present
                else f"{name} ({short}) lacks a signed {what} attestation",
                where,
                RULES[rule_id].help,
            )
        )
    checks.append(_ancestor_check(facts, where))
    checks.append(_promotion_check(gate, facts, where))
    checks += _hardening_checks(gate, facts, where)
    return checks


def _signed_check(gate: GateInput, facts: ImageFacts, where: Location) -> Check:
    trusted = facts.key_ids & gate.trusted_key_ids
    env = gate.environment or "any environment"
    if trusted:
        return Check(
            "image-signed",
            facts.image,
            True,
            f"signed by trusted key {sorted(trusted)[0][:12]}",
            where,
        )
    if not facts.key_ids:
        message = f"{facts.image} is not signed"
    else:
        message = f"{facts.image} is signed only by keys not trusted for {env}"
    return Check(
        "image-signed",
        facts.image,
        False,
        message,
        where,
        f"sign it with a key that trust.environments allows for {env}",
    )


def _ancestor_check(facts: ImageFacts, where: Location) -> Check:
    if facts.commit is None:
        return Check(
            "image-provenance-ancestor",
            facts.image,
            False,
            f"the provenance of {facts.image} names no source commit",
            where,
            "rebuild the image from a committed tree",
        )
    ok = facts.commit_is_ancestor is True
    return Check(
        "image-provenance-ancestor",
        facts.image,
        ok,
        f"built from {facts.commit[:12]}, an ancestor of HEAD"
        if ok
        else f"built from {facts.commit[:12]}, which is not an ancestor of HEAD",
        where,
        "rebuild the image from this branch (in CI, fetch full history: "
        "fetch-depth: 0)",
    )


def _promotion_check(gate: GateInput, facts: ImageFacts, where: Location) -> Check:
    env = gate.environment
    required = gate.policy.promotion.get(env, []) if env else []
    missing = [e for e in required if e not in facts.verified_in]
    if not required:
        message = "no promotion rule for this environment"
    elif missing:
        message = (
            f"{facts.image} ({(facts.digest or '')[:19]}) was not deployed and "
            f"verified in {', '.join(missing)} before {env}"
        )
    else:
        message = f"verified in {', '.join(required)} first"
    return Check(
        "image-promotion",
        facts.image,
        not missing,
        message,
        gate.where("policy", "promotion", env) if env and required else where,
        f"deploy the same digest to {', '.join(missing)} and verify it there"
        if missing
        else None,
    )


def _hardening_checks(
    gate: GateInput, facts: ImageFacts, where: Location
) -> list[Check]:
    recipe = gate.fleet.images.get(facts.image) if gate.fleet else None
    waivers = recipe.hardening.waivers if recipe is not None else []
    checks = []
    for finding in facts.hardening:
        if finding.severity not in _BLOCKING:
            continue
        target = f"{facts.image}:{finding.check}"
        if finding.path:
            target += f":{finding.path}"
        waiver = next(
            (
                w
                for w in waivers
                if w.check == finding.check
                and w.path in (None, finding.path)
                and gate.today <= w.expires
            ),
            None,
        )
        checks.append(
            Check(
                "image-hardening",
                target,
                False,
                f"{finding.severity.label} hardening finding: {finding.message}",
                where,
                RULES["image-hardening"].help,
                waived_by=None if waiver is None else waiver.reason,
            )
        )
    if not checks:
        checks.append(
            Check(
                "image-hardening",
                facts.image,
                True,
                "no high-severity hardening finding",
                where,
            )
        )
    return checks


# --- Policy -----------------------------------------------------------------


def _apply_policy(gate: GateInput, checks: list[Check]) -> list[Result]:
    policy = gate.policy
    modes = {rule_id: rule_mode(policy, rule_id, gate.environment) for rule_id in RULES}
    waivers = [
        (w, _glob(w.target))
        for w in policy.waivers
        if _applies_to_env(w, gate.environment) and gate.today <= w.expires
    ]
    results = []
    for check in checks:
        mode = modes[check.rule]
        if mode == "off":
            continue
        status, waiver = _status(check, mode, waivers)
        results.append(
            Result(
                rule=check.rule,
                status=status,
                target=check.target,
                message=check.message,
                hint=check.hint if status is not Status.PASS else None,
                location=check.location,
                csf=RULES[check.rule].csf,
                waiver=waiver,
                severity=RULES[check.rule].severity,
            )
        )
    return results


def _status(
    check: Check, mode: RuleMode, waivers: list[tuple[GateWaiver, re.Pattern[str]]]
) -> tuple[Status, str | None]:
    if check.ok is None:
        return Status.SKIP, None
    if check.ok:
        return Status.PASS, None
    if check.waived_by is not None:
        return Status.WAIVED, check.waived_by
    for waiver, pattern in waivers:
        if waiver.rule == check.rule and pattern.fullmatch(check.target):
            return Status.WAIVED, waiver.reason
    return (Status.FAIL if mode == "enforce" else Status.WARN), None


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
